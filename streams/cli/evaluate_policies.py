"""The policies ``streamrec evaluate`` can run, named with what each is, for its --help.

Kept in the CLI, not imported from models/: the help text needs them, and --help must not load
Torch.
"""

from __future__ import annotations

POLICIES = {
    "popularity": "most consumed items so far",
    "trending": "popularity fading with --trending-half-life",
    "item-knn": "co-occurrence within each user's last 20 items",
    "online-mf": "ISGD: one SGD step per event (d 10)",
    "v-sknn": "V-SKNN over users' last 20 items (k 100, sample 500, linear, idf 10)",
    "stan": "STAN over users' last 20 items (k 100, sample 5000, session-rec's lambdas)",
    "sr": "sequential rules from the user's newest item (steps 10, linear, top 20)",
    "content-knn": "items whose text is most like the user's last 5, by --catalog's content "
    "vectors alone (an announced item is a candidate before its first event); only when named",
    "interest": "the product's decayed interest vector alone, at each --half-life",
    "neighbours": "the interest vector fused with each version's co-visits, sequential rules and "
    "session neighbours (V-SKNN over its users' last 20 items) at its fitted weights, by the "
    "workers' code",
    "live-neighbours": "as neighbours, with the co-visits and rules of every event since the "
    "version counted as it lands (taken every 100 events, an item from its first event); not "
    "served by workers yet",
    "product": "the product: interest vector + --model's encoder and ranker, fused with the "
    "neighbours",
    "sources": "candidates from item-knn, sr, v-sknn, stan, popularity, trending and the "
    "interest vector at --sources-half-life (with --catalog, content-knn too), ranked by a "
    "ranker learned online",
    **{f"{name}-{every}": f"{label} retrained from scratch every {every} of event time, "
       "frozen between"
       for name, label in (("sasrec", "SASRec"), ("gru4rec", "GRU4Rec"))
       for every in ("60min", "1d")},
}
# Each retraining is a full training: only run when named; content-knn needs --catalog.
RETRAINED = tuple(name for name in POLICIES if name.startswith(("sasrec-", "gru4rec-")))
DEFAULT_POLICIES = tuple(name for name in POLICIES
                         if name not in (*RETRAINED, "content-knn", "live-neighbours"))
