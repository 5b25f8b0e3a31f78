# `make demo` and `make test` work on a fresh machine: they create .venv and install with
# constraints.txt (torch 2.13.0). PyPI's torch for Linux is the CUDA build (it runs on the CPU):
# several GB with its CUDA libraries, so its wheels are kept in WHEELS (pip download skips the
# files it has) and a later install (a new clone, CI) takes torch from there, not the network.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
WHEELS ?= $(HOME)/.cache/streamrec/wheels

.PHONY: install browser demo test unit integration offline-eval docs bench bench-ann bench-poisoning bench-hotkey evaluate evaluate-ml-100k evaluate-ml-1m evaluate-synthetic evaluate-ecommerce evaluate-forgetting evaluate-content evaluate-yoochoose evaluate-diginetica evaluate-taobao clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip download --quiet --dest $(WHEELS) -c constraints.txt torch
	$(BIN)/pip install --quiet --no-index --find-links $(WHEELS) -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,content]'
	touch $@

# Apache Kafka's broker jars (deploy/kafka/pom.xml) into ~/.cache/streamrec where a JDK and Maven
# exist; without them the demo and the tests run on the embedded Tansu (pip only).
$(VENV)/.kafka: deploy/kafka/pom.xml $(BIN)/.installed
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/streamrec broker --fetch && touch $@; \
	else echo "no JDK or Maven here: the demo and the tests run on the embedded Tansu broker"; fi

install: $(BIN)/.installed $(VENV)/.kafka

demo: install
	$(BIN)/streamrec demo

# The suite on the local broker (Apache Kafka where a JDK runs it), in two processes (pytest-xdist,
# one broker for both), then the Tansu lane: the pipeline's core tests again on the pip-only broker.
# Debian's Chromium and ChromeDriver, which the web console's browser test drives
# (tests/integration/test_console.py): installed with apt-get where they are missing and this is
# root on Debian (CI is); elsewhere that test skips, and says how to install them.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			>/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver >/dev/null; }; \
	else echo "no chromium: the browser test will skip (apt-get install chromium chromium-driver)"; \
	fi

test: install browser
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 tests
	STREAMREC_TEST_BROKER=tansu $(BIN)/pytest -q -p no:cacheprovider -m tansu_lane tests

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration tests/reliability

# Every model and the popularity baseline on both MovieLens sets (tens of minutes on 2 cores).
DATASETS ?= ../shared/datasets
offline-eval: install
	$(BIN)/python bench/offline_eval.py --datasets $(DATASETS)

bench-ann: install
	$(BIN)/python bench/ann.py

# Issue 32's poisoning run: two workers with a cluster key, every internal topic poisoned and a
# hostile stream on the events topic (a few minutes); bench/results/poisoning.{json,md}.
bench-poisoning: install
	$(BIN)/python bench/poisoning.py

# Issue 32's hot-key run: other users' latency while one user bursts, slices off and on.
bench-hotkey: install
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(BIN)/python bench/hotkey.py

# Every performance benchmark, then docs/benchmarks.md from their tables (about 90 minutes from a clean clone on
# 2 cores). The peer (Quix Streams) needs its own venv: it pins an older pydantic.
PEER := .venv-peer
$(PEER)/.installed: bench/peer-requirements.txt
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install --quiet -r bench/peer-requirements.txt
	touch $@

bench: install $(PEER)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	$(BIN)/python bench/throughput.py --events 30000 --profile
	$(BIN)/python bench/throughput.py --events 40000 --runs 'a record per event' quix --name exactly_once --repeat 4 --warm-up
	$(BIN)/python bench/latency.py --loads 1000 5000
	$(BIN)/python bench/fetch_wait.py
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/state_size.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/ready_time.py --runs 1 --state-users 1000000
	$(BIN)/python bench/backlog.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/hotkey.py
	$(BIN)/python bench/benchmarks_doc.py

# Prequential evaluation (docs/evaluation.md): both MovieLens sets, then the synthetic half-life
# sweep (tens of minutes on 2 cores, most of it model updates and rebuilding user vectors at each
# version; evaluate-ml-100k runs every default policy, the session baselines included).
PREQ := bench/results/prequential
# The product's model: the interest vector's own space, a new version every 1,000 events, each
# continuing from the one before on the newest 10,000 (docs/evaluation.md).
UPDATES := --model interest-mf --retrain-every 1000 --warm-start --recent-events 10000
HALF_LIVES := --half-life 1ev --half-life 2ev --half-life 5ev --half-life 20ev \
	--half-life 1d --half-life 7d --half-life inf
# The bar on every log: the cheap baselines. Beside them the evaluated default, `sources` (every
# candidate source and the interest vector ranked by the online ranker; workers do not run it
# yet), the interest vector alone, and the interest vector fused with each version's item
# neighbours, which workers serve.
BASELINES := --policy popularity --policy trending --policy item-knn --policy v-sknn \
	--policy stan --policy sr
PRODUCT := --history-len 1000 --policy interest --policy neighbours --half-life 2ev \
	--policy sources
evaluate: evaluate-ml-100k evaluate-ml-1m evaluate-synthetic evaluate-ecommerce

# The trainer's decay (its ranker's, its forgetting entry's, and what each version fits its
# neighbours' weights under) is the one the rows at 2ev serve (docs/evaluation.md, "Item
# neighbours in the workers").
evaluate-ml-100k evaluate-ml-1m evaluate-yoochoose evaluate-diginetica evaluate-taobao: \
	export STREAMREC_HALF_LIFE_EVENTS = 2

evaluate-ml-100k: install
	$(BIN)/streamrec evaluate --data $(DATASETS)/ml-100k/u.data $(UPDATES) \
		--history-len 1000 $(HALF_LIVES) --through-kafka 10000 --out $(PREQ)/ml-100k

evaluate-ml-1m: install
	$(BIN)/streamrec evaluate --data $(DATASETS)/ml-1m-users-1-2999/ratings.dat.gz $(UPDATES) \
		$(BASELINES) --policy online-mf $(PRODUCT) --half-life 1ev --half-life 5ev \
		--half-life inf --out $(PREQ)/ml-1m-users-1-2999

# The e-commerce samples, sessions standing in for users on Yoochoose and Diginetica; the two
# smaller ones with the source ranker's ablation (docs/evaluation.md). Yoochoose's train and test
# files are one log.
evaluate-ecommerce: evaluate-yoochoose evaluate-diginetica evaluate-taobao

YOOCHOOSE := $(DATASETS)/yoochoose-100k-sample/yoochoose-clicks-100k
evaluate-yoochoose: install
	log=$$(mktemp --suffix .tsv) && (cat $(YOOCHOOSE)_train_full.txt; \
		tail -n +2 $(YOOCHOOSE)_test.txt) > $$log && \
	$(BIN)/streamrec evaluate --data $$log --format yoochoose-sessions $(UPDATES) \
		$(BASELINES) $(PRODUCT) --out $(PREQ)/yoochoose; \
		status=$$?; rm -f $$log; exit $$status

evaluate-diginetica: install
	$(BIN)/streamrec evaluate --data \
		$(DATASETS)/diginetica-sample/sample_train-item-views.csv --format diginetica \
		$(UPDATES) $(BASELINES) $(PRODUCT) --ablate-sources --out $(PREQ)/diginetica

evaluate-taobao: install
	$(BIN)/streamrec evaluate --data \
		$(DATASETS)/taobao-userbehavior-sample/UserBehavior_head.csv --format taobao \
		$(UPDATES) $(BASELINES) $(PRODUCT) --ablate-sources --out $(PREQ)/taobao

# Event types carry no signal in the generator, so they weigh the same here.
# Content vectors against none (docs/evaluation.md, "Content vectors"): each set twice, the second
# time with its item catalog: the served policies (interest, product), then the evaluated default
# `sources` (with the catalog, content neighbours are one of its sources); content-knn; then the
# table and plot of every pair.
CONTENT_POLICIES := --history-len 1000 --policy popularity --policy trending --policy item-knn \
	--policy interest --policy product --half-life 2ev
ML1M := $(DATASETS)/ml-1m-users-1-2999/ratings.dat.gz
evaluate-content: install
	for c in off on; do \
	  C=$$([ $$c = on ] && echo "--policy content-knn --catalog $(DATASETS)/ml-100k/u.item"); \
	  $(BIN)/streamrec evaluate --data $(DATASETS)/ml-100k/u.data $(UPDATES) $(CONTENT_POLICIES) \
	    $$C --out $(PREQ)/ml-100k-content-$$c || exit 1; \
	  C=$$([ $$c = on ] && echo "--catalog $(DATASETS)/ml-100k/u.item"); \
	  $(BIN)/streamrec evaluate --data $(DATASETS)/ml-100k/u.data $(UPDATES) $(BASELINES) \
	    $(PRODUCT) $$C --out $(PREQ)/ml-100k-sources-content-$$c || exit 1; \
	  C=$$([ $$c = on ] && echo "--catalog $(DATASETS)/ml-1m/movies.dat"); \
	  $(BIN)/streamrec evaluate --data $(ML1M) $(UPDATES) \
	    --history-len 1000 --policy trending --policy item-knn --policy interest --half-life 2ev \
	    $$C --out $(PREQ)/ml-1m-content-$$c || exit 1; \
	  $(BIN)/streamrec evaluate --data $(ML1M) $(UPDATES) --policy sr $(PRODUCT) \
	    $$C --out $(PREQ)/ml-1m-sources-content-$$c || exit 1; \
	done
	$(BIN)/streamrec evaluate --data $(ML1M) \
	  --policy content-knn --catalog $(DATASETS)/ml-1m/movies.dat --out $(PREQ)/ml-1m-content-knn
	# content only for new items: one model trained on the warm-up, never updated
	for c in off on; do \
	  C=$$([ $$c = on ] && echo "--catalog $(DATASETS)/ml-100k/u.item"); \
	  $(BIN)/streamrec evaluate --data $(DATASETS)/ml-100k/u.data --model interest-mf \
	    --history-len 1000 --policy item-knn --policy interest --half-life 2ev $$C \
	    --out $(PREQ)/ml-100k-frozen-content-$$c || exit 1; \
	done
	$(BIN)/python bench/content_eval.py \
	  --pair "ML-100K=$(PREQ)/ml-100k-content-off,$(PREQ)/ml-100k-content-on" \
	  --pair "ML-100K=$(PREQ)/ml-100k-sources-content-off,$(PREQ)/ml-100k-sources-content-on" \
	  --pair "ML-1M part=$(PREQ)/ml-1m-content-off,$(PREQ)/ml-1m-content-on" \
	  --pair "ML-1M part=$(PREQ)/ml-1m-sources-content-off,$(PREQ)/ml-1m-sources-content-on" \
	  --out docs/img/content-vectors.png
	$(BIN)/python bench/content_eval.py \
	  --pair "ML-100K frozen=$(PREQ)/ml-100k-frozen-content-off,$(PREQ)/ml-100k-frozen-content-on" \
	  --out docs/img/content-only-new-items.png

evaluate-synthetic: install
	STREAMREC_EVENT_WEIGHTS='{"view":1,"click":1,"cart":1,"purchase":1,"rating":1,"skip":-1}' \
	$(BIN)/streamrec evaluate --generate --users 1000 --events-per-user 100 --true-half-life 6h \
		--drift 0.25 --warmup 0.5 --model mf --policy popularity --policy trending \
		--policy item-knn --policy interest --half-life 2h --half-life 3h --half-life 4h \
		--half-life 6h --half-life 8h --half-life 12h --half-life 16h --half-life 1d \
		--half-life inf --out $(PREQ)/synthetic

# Forgetting functions (issue 29, docs/evaluation.md): fit on each set's warm-up, then the
# worker's exponential and each family's fitted best on the tested stream.
FORGETTING := --policy interest --half-life 2ev --forgetting exp:2ev --fit-forgetting
evaluate-forgetting: install
	$(BIN)/streamrec evaluate --data $(DATASETS)/ml-100k/u.data $(UPDATES) --history-len 1000 \
		--policy item-knn $(FORGETTING) --out $(PREQ)/forgetting-ml-100k
	$(BIN)/streamrec evaluate --data $(DATASETS)/ml-1m-users-1-2999/ratings.dat.gz $(UPDATES) \
		--history-len 1000 $(FORGETTING) --out $(PREQ)/forgetting-ml-1m

# docs/configuration.md from the settings' own fields (a unit test fails when they differ).
docs: install
	$(BIN)/python -c "from streams.tools.configuration_doc import PAGE, render; \
		PAGE.write_text(render())"

clean:
	rm -rf $(VENV) .demo state artifacts *.egg-info
