"""Profiles, --set overrides (YAML values) and clear errors for unknown keys and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.schema import PROFILE_DIR, RunConfig, load_config
from tasks.errors import InputError


def test_default_profile_is_demo():
    cfg = load_config()
    assert cfg.data.dir == "" and cfg.embedding.model == "all-MiniLM-L6-v2"
    assert cfg.model.alpha == 5.0 and cfg.split.test_size == 0.2 and cfg.embedding.chunk_size == 256


def test_seed_profile_matches_the_notebook():
    cfg = load_config(PROFILE_DIR / "seed.yaml")
    assert cfg.data.movies_limit == 201  # movies.loc[:200]
    assert cfg.embedding.model == "BAAI/bge-base-en" and cfg.embedding.chunk_size == 256
    assert cfg.model.alpha == 5.0 and cfg.embedding.normalize is True


def test_profiles_by_short_name():
    assert load_config("ml-1m").data.movies_limit == 0  # null in the profile: all movies
    assert load_config("seed").data.movies_limit == 201


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(
        overrides=[
            "model.alpha=2.5", "split.seed=7", "data.dir=/tmp/x", "data.movies_limit=null",
            "embedding.device=cpu", "cache.dir=/tmp/c", "data.missing_overview=empty",
            "embedding.batch_size=16", "embedding.chunk_size=32", "split.test_size=0.25", "data.demo.users=10",
        ]
    )  # fmt: skip
    assert (cfg.model.alpha, cfg.split.seed, cfg.data.dir, cfg.data.movies_limit) == (2.5, 7, "/tmp/x", 0)
    assert (cfg.embedding.device, cfg.cache.dir, cfg.data.missing_overview) == ("cpu", "/tmp/c", "empty")
    assert (cfg.embedding.batch_size, cfg.embedding.chunk_size, cfg.split.test_size) == (16, 32, 0.25)
    assert cfg.data.demo.users == 10


@pytest.mark.parametrize("value, scale", [("auto", None), ("null", None), ("0.5-5", (0.5, 5.0)), ("[1, 10]", (1.0, 10.0))])
def test_rating_scale_as_text_or_list(value, scale):
    cfg = load_config(overrides=[f"data.rating_scale={value}"])
    assert cfg.data.scale == scale


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.alhpa=3", "unknown key 'model.alhpa'"),
        ("modle.alpha=3", "unknown key 'modle'"),
        ("model.alpha=-1", "'model.alpha': Input should be greater than 0"),
        ("split.test_size=1.5", "'split.test_size': Input should be less than 1"),
        ("embedding.device=gpu", "'embedding.device': String should match pattern"),
        ("data.missing_overview=skip", "'data.missing_overview': Input should be 'drop' or 'empty'"),
        ("embedding.batch_size=many", "'embedding.batch_size': Input should be a valid integer"),
        ("model.alpha", "expected dotted.key=value"),
        ("model.alpha.x=1", "'alpha' is a value, not a section"),
        ("data.rating_scale=abc", "'data.rating_scale': Value error, use auto, or LOW-HIGH such as 1-5 or 0.5-5"),
        ("data.rating_scale=5-1", "'data.rating_scale': Value error, the low end must be below the high end"),
        ("embedding.fields=[title, plot]", "'embedding.fields.1': Input should be 'title', 'overview', 'genres' or 'tags'"),
    ],
)
def test_bad_override_is_one_clear_line(override, message):
    with pytest.raises(InputError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(InputError, match=r"config .*bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_every_profile_validates():
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        assert isinstance(load_config(path), RunConfig)


def test_optional_paths_are_text_with_empty_meaning_default(monkeypatch, tmp_path):
    """The run form shows plain text boxes: null in a profile is the empty string; the cache folder
    is resolved where the flow runs, not baked into the default."""
    from configs.schema import CacheConfig, load_config

    cfg = load_config(overrides=["data.dir=null", "runner.address=null", "model.alphas=null", "data.movies_limit=null"])
    assert (cfg.data.dir, cfg.runner.address, cfg.cache.dir, cfg.model.alphas, cfg.data.movies_limit) == ("", "", "", [], 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert CacheConfig().location == str(tmp_path / "movie-ratings")
    assert Path(CacheConfig(dir="~/x").location).is_absolute() and CacheConfig(dir="s3://b/p/").location == "s3://b/p"
