"""A deterministic synthetic MovieLens-like data set, so the project runs without redistributing MovieLens.

Movies get 1-3 genres; titles and overviews are written from each genre's vocabulary and, in the
default realistic texts, from the movie's hidden tastes and craft (tasks/demo_text.py), so sentence
embeddings can recover the genre and part of what genres do not say. A rating is 3.55 + user effect
(age, gender, occupation, own leniency) + movie effect (genre quality, craft, hidden quality) +
user-feature x genre affinity + user x movie latent tastes + noise, rounded and clipped to 1-5.

``write_demo_data`` writes the set in the notebook's CSV layout or in the layout of any MovieLens
release (100K, 1M, 10M, 20M/25M/32M/latest), as GroupLens ships it: tasks/demo_layouts.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tasks import demo_text
from tasks.atomic import atomic_write_bytes, staged_folder
from tasks.caching import CODE_VERSION, run_logger
from tasks.demo_layouts import DEMO_LAYOUTS, FileOptions, Synthetic, chosen_layout
from tasks.demo_text import GENRE_NAMES, GENRES, TEXT_LENGTHS
from tasks.hashing import dir_digest, sha256_text
from tasks.locations import is_remote, local_path, private_temp_dir
from tasks.movielens import OCCUPATIONS
from tasks.results import DemoFolder
from tasks.stage import stage

log = logging.getLogger(__name__)

AGES = np.array([1, 18, 25, 35, 45, 50, 56])  # MovieLens-1M age buckets
AGE_P = np.array([0.04, 0.18, 0.35, 0.20, 0.09, 0.08, 0.06])

PARQUET_ABOVE = 2_000_000  # ratings; above this 'auto' writes ratings.parquet
# Effect sizes chosen so the baselines rank and sit as on real MovieLens-1M (test RMSE: global ~1.11 >
# user mean ~1.03 > movie mean ~0.98 > user + movie bias ~0.91) while user features and texts still
# carry signal. A movie's own quality is CRAFT (hinted at in realistic overviews) + a hidden part.
USER_BIAS_SD, MOVIE_BIAS_SD, CRAFT_SD, LATENT_DIM, LATENT_SD, NOISE_SD = 0.35, 0.42, 0.3, 4, 0.5, 0.8
GENRE_QUALITY = np.array([g[0] for g in GENRES.values()])


def _users(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1, dtype=np.int64),
            "gender": np.where(rng.random(n) < 0.28, "F", "M"),
            "age": rng.choice(AGES, size=n, p=AGE_P),
            "occupation": rng.choice(np.array(OCCUPATIONS, dtype=object), size=n),
            "zip": [f"{z:05d}" for z in rng.integers(1000, 99999, size=n)],
        }
    )


def _movie_genres(n: int, rng: np.random.Generator) -> np.ndarray:
    genre_mat = np.zeros((n, len(GENRES)), dtype=bool)
    for i in range(n):
        k = rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])
        genre_mat[i, rng.choice(len(GENRES), size=k, replace=False)] = True
    return genre_mat


def _movies(
    genre_mat: np.ndarray, factors: np.ndarray, craft: np.ndarray, rng: np.random.Generator,
    missing_overview: float, text_length: str,
) -> pd.DataFrame:
    n = len(genre_mat)
    titles, overviews, genres = [], [], []
    for i in range(n):
        picked = [GENRE_NAMES[g] for g in rng.permutation(np.flatnonzero(genre_mat[i]))]
        titles.append(demo_text.title(picked, int(rng.integers(1930, 2001)), rng))
        overviews.append(demo_text.overview(picked, factors[i], craft[i], LATENT_SD, CRAFT_SD, rng, text_length))
        genres.append("|".join(sorted(picked, key=GENRE_NAMES.index)))
    overview = pd.Series(overviews, dtype=object)
    overview[rng.random(n) < missing_overview] = None
    return pd.DataFrame(
        {"movie_id": np.arange(1, n + 1, dtype=np.int64), "title": titles, "overview": overview, "genres": genres}
    )


def _pairs(n_users: int, n_movies: int, n_ratings: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, movie) pairs: active users and popular movies are drawn more often."""
    n_ratings = min(n_ratings, n_users * n_movies)
    p_user = rng.lognormal(0.0, 0.8, n_users)
    p_user /= p_user.sum()
    p_movie = 1.0 / np.arange(1, n_movies + 1) ** 0.6
    p_movie = rng.permutation(p_movie / p_movie.sum())
    seen = np.empty(0, dtype=np.int64)
    while len(seen) < n_ratings:
        need = int((n_ratings - len(seen)) * 1.3) + 16
        u = rng.choice(n_users, size=need, p=p_user)
        m = rng.choice(n_movies, size=need, p=p_movie)
        # Keep first occurrences in draw order so the result is deterministic for a seed.
        candidates = np.concatenate([seen, u.astype(np.int64) * n_movies + m])
        _, first = np.unique(candidates, return_index=True)
        seen = candidates[np.sort(first)]
        if len(seen) >= n_users * n_movies:
            break
        if need > 50 * n_ratings:  # dense corner: fill deterministically with what is left
            rest = np.setdiff1d(np.arange(n_users * n_movies), seen)
            seen = np.concatenate([seen, rest])
    seen = seen[:n_ratings]
    return seen // n_movies, seen % n_movies


def generate(
    users: int, movies: int, ratings: int, seed: int = 0, missing_overview: float = 0.02, text_length: str = "realistic"
) -> dict:
    """The three tables (DataFrames) of a synthetic data set; same arguments, same tables."""
    return synthetic(users, movies, ratings, seed, missing_overview, text_length).tables


def synthetic(
    users: int, movies: int, ratings: int, seed: int = 0, missing_overview: float = 0.02, text_length: str = "realistic"
) -> Synthetic:
    """``generate()``'s tables with the hidden values the release layouts draw from: each rating's
    unrounded score (for half stars) and each movie's stated tone and craft poles (for its tags)."""
    if text_length not in TEXT_LENGTHS:
        raise ValueError(f"unknown text length {text_length!r}; use {' or '.join(TEXT_LENGTHS)}")
    rng = np.random.default_rng(seed)
    user_t = _users(users, rng)
    genre_mat = _movie_genres(movies, rng)
    # Latent tastes: user x movie factors that neither features nor biases explain (the movie's are
    # hinted at in its realistic overview, so text can stand in for them on a movie never rated).
    user_factors = rng.normal(0.0, LATENT_SD, (users, LATENT_DIM))
    movie_factors = rng.normal(0.0, LATENT_SD, (movies, LATENT_DIM))
    craft = rng.normal(0.0, CRAFT_SD, movies)
    movie_t = _movies(genre_mat, movie_factors, craft, rng, missing_overview, text_length)
    u, m = _pairs(users, movies, ratings, rng)

    occ_effect = dict(zip(OCCUPATIONS, rng.normal(0.0, 0.25, len(OCCUPATIONS))))
    user_effect = (
        0.012 * (user_t["age"].to_numpy() - 30)
        + np.where(user_t["gender"].to_numpy() == "F", 0.15, -0.05)
        + user_t["occupation"].map(occ_effect).to_numpy()
        + rng.normal(0.0, USER_BIAS_SD, users)  # each user's own leniency, beyond their features
    )
    n_genres = genre_mat.sum(axis=1)
    # Genre quality (readable from genres and texts), craft (hinted at in realistic texts) and a
    # hidden part of each movie's own quality.
    movie_effect = 1.4 * (genre_mat @ GENRE_QUALITY) / n_genres + craft + rng.normal(0.0, MOVIE_BIAS_SD, movies)
    # Tastes: user-feature x genre affinities that a linear model without interactions cannot fit.
    g = {name: genre_mat[:, i] for i, name in enumerate(GENRE_NAMES)}
    female = user_t["gender"].to_numpy() == "F"
    older = user_t["age"].to_numpy() >= 45
    young = user_t["age"].to_numpy() < 25
    affinity = (
        0.5 * female[u] * g["Romance"][m]
        - 0.3 * female[u] * g["Horror"][m]
        + 0.4 * older[u] * g["Drama"][m]
        + 0.4 * young[u] * (g["Horror"][m] | g["Animation"][m])
    )
    latent = np.einsum("ij,ij->i", user_factors[u], movie_factors[m])
    score = 3.55 + user_effect[u] + movie_effect[m] + affinity + latent + rng.normal(0.0, NOISE_SD, len(u))
    rating_t = pd.DataFrame(
        {
            "user_id": user_t["user_id"].to_numpy()[u],
            "movie_id": movie_t["movie_id"].to_numpy()[m],
            "rating": np.clip(np.rint(score), 1, 5).astype(np.int64),
            "timestamp": 956_703_932 + np.sort(rng.integers(0, 90_000_000, len(u))),
        }
    )
    # The poles its realistic overview states (tasks/demo_text.overview's rule): its tags say the same.
    tone = np.where(np.abs(movie_factors) > 0.5 * LATENT_SD, np.sign(movie_factors), 0).astype(np.int8)
    craft_pole = np.where(np.abs(craft) > 0.5 * CRAFT_SD, np.sign(craft), 0).astype(np.int8)
    return Synthetic(
        tables={"ratings": rating_t, "users": user_t, "movies": movie_t}, score=score, user_pos=u, movie_pos=m,
        tone=tone, craft=craft_pole, seed=seed,
    )  # fmt: skip


def write_demo_data(
    out_dir: str | os.PathLike,
    users: int = 600,
    movies: int = 400,
    ratings: int = 40_000,
    seed: int = 0,
    layout: str = "csv",
    ratings_format: str = "auto",
    text_length: str = "realistic",
    overviews: str = "auto",
) -> dict[str, Path]:
    """Write a generated data set in one layout (tasks/demo_layouts.py): 'csv', 'ml-100k', 'ml-1m',
    'ml-10m', 'ml-latest' or its aliases 'ml-20m', 'ml-25m', 'ml-32m', 'ml-latest-small'.

    In the CSV layout the ratings are ``ratings.parquet`` when ``ratings_format`` is 'parquet', or
    'auto' and there are more than 2M of them (a 25M-row CSV is slow to write and to read); the
    release layouts write them as GroupLens does ('parquet' is refused). ``overviews``: 'auto' (the
    layout's usual place: csv's movies.csv, ml-1m's overviews.csv, none for the others), 'none', or
    overviews.csv keyed by 'movie_id', 'tmdb' or 'imdb' (the last two with links.csv: ml-latest).
    A bad or mismatched choice is a ValueError before any work. Each file is written atomically;
    returns the paths written."""
    name = chosen_layout(layout, ratings_format, overviews)
    data = synthetic(users, movies, ratings, seed, text_length=text_length)
    parquet = name == "csv" and (ratings_format == "parquet" or (ratings_format == "auto" and ratings > PARQUET_ABOVE))
    files = DEMO_LAYOUTS[name].write(data, FileOptions(parquet=parquet, overviews=overviews))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for file, content in files.items():
        atomic_write_bytes(out / file, content)
        written[file] = out / file
    return written


@stage("demo-data", result=DemoFolder)
def demo_folder(
    users: int, movies: int, ratings: int, seed: int, cache_dir: str, text_length: str = "realistic"
) -> DemoFolder:
    """Generate the demo data set once per (size, seed, code) into the cache; returns a reference to
    its folder (kind 'dir', so a cached result whose folder was removed is detected and regenerated).
    The loader reads a local folder: with the cache on an object store the demo data goes to the
    temporary folder instead (same path on each run of this machine, so the load stays cached)."""
    key = sha256_text(str(users), str(movies), str(ratings), str(seed), text_length, CODE_VERSION)[:16]
    out = (private_temp_dir("demo-data") if is_remote(cache_dir) else local_path(cache_dir) / "demo-data") / key
    if not out.exists():
        run_logger(log).info(
            "generating demo data: %d users, %d movies, %d ratings, seed %d, %s texts",
            users, movies, ratings, seed, text_length,
        )  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(out.parent, key) as staging:
            write_demo_data(staging, users=users, movies=movies, ratings=ratings, seed=seed, text_length=text_length)
            try:
                os.rename(staging, out)  # the folder appears complete or not at all
            except OSError:  # a concurrent run got there first: same content
                pass
    return DemoFolder(path=str(out), sha256=dir_digest(out), kind="dir")
