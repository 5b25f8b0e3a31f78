from streams.tools.demo import DEMO_OUTPUTS, reset_workdir


def test_reset_workdir_removes_only_what_the_demo_wrote(tmp_path):
    (tmp_path / "state" / "tables").mkdir(parents=True)
    (tmp_path / "model").mkdir()
    (tmp_path / "worker.log").write_text("old")
    (tmp_path / "pyproject.toml").write_text("mine")
    (tmp_path / "src").mkdir()
    reset_workdir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml", "src"]
    assert not set(DEMO_OUTPUTS) & {p.name for p in tmp_path.iterdir()}


def test_reset_workdir_creates_a_missing_directory(tmp_path):
    reset_workdir(tmp_path / "new" / "demo")
    assert (tmp_path / "new" / "demo").is_dir()
