"""A deterministic synthetic MovieLens-like data set, so the project runs without redistributing MovieLens.

Movies get 1-3 genres; titles and overviews are written from each genre's vocabulary, so sentence
embeddings can recover the genre. A rating is 3.5 + user effect (age, gender, occupation) + movie
effect (genre quality) + user-feature x genre affinity + noise, rounded and clipped to 1-5. The
main effects are what a linear model on user features + embeddings can learn; the affinities and the
noise keep it honest.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.atomic import atomic_write_bytes, staged_folder
from tasks.caching import CODE_VERSION, run_logger
from tasks.hashing import dir_digest, sha256_text
from tasks.movielens import OCCUPATIONS
from tasks.results import DemoFolder
from tasks.stage import stage

log = logging.getLogger(__name__)

AGES = np.array([1, 18, 25, 35, 45, 50, 56])  # MovieLens-1M age buckets
AGE_P = np.array([0.04, 0.18, 0.35, 0.20, 0.09, 0.08, 0.06])

# genre: (quality, title words, overview subjects, overview events)
GENRES: dict[str, tuple[float, list[str], list[str], list[str]]] = {
    "Action": (-0.10, ["Strike", "Fury", "Bullet", "Velocity", "Siege", "Impact"],
               ["a rogue commando", "an ex-cop", "a getaway driver", "a special forces unit"],
               ["fights through a hijacked train", "races to stop a bomb", "battles a ruthless cartel",
                "survives a deadly car chase across the city"]),
    "Comedy": (-0.05, ["Wedding", "Trouble", "Roommates", "Vacation", "Mixup", "Party"],
               ["two clumsy best friends", "a hapless groom", "an awkward substitute teacher",
                "a family of oddballs"],
               ["stumble into hilarious misunderstandings", "throw the wildest party in town",
                "pretend to be someone else for a week", "get stuck on a disastrous road trip"]),
    "Drama": (0.35, ["Silence", "Letters", "Inheritance", "Winter", "Grace", "Harbor"],
              ["a grieving widow", "an estranged father", "a young nurse", "a struggling factory worker"],
              ["confronts the past after a family tragedy", "fights for dignity and justice",
               "rebuilds a broken life", "faces a painful moral choice"]),
    "Horror": (-0.55, ["Haunting", "Blood", "Crypt", "Nightmare", "Possession", "Shadows"],
               ["a group of teenagers", "a paranormal investigator", "a lonely caretaker", "a cursed family"],
               ["is hunted by a demon in an abandoned asylum", "awakens an ancient evil",
                "is stalked by a masked killer", "hears whispers from the cellar at night"]),
    "Romance": (0.10, ["Love", "Kiss", "Heart", "Summer", "Promise", "Paris"],
                ["two lonely strangers", "a shy bookseller", "former high-school sweethearts", "a love-struck poet"],
                ["fall in love over one unforgettable summer", "find romance against all odds",
                 "rekindle an old passion", "exchange secret love letters"]),
    "Sci-Fi": (0.05, ["Galaxy", "Android", "Orbit", "Quantum", "Nebula", "Colony"],
               ["a starship crew", "a rogue android", "a time-travelling physicist", "the last colonists on Mars"],
               ["discover an alien signal from deep space", "fight a rebellion against the machines",
                "travel through a wormhole", "explore a distant planet"]),
    "Animation": (0.25, ["Kingdom", "Dragon", "Adventure", "Toy", "Forest", "Wish"],
                  ["a brave little fox", "a talking toy robot", "a young princess", "a curious penguin"],
                  ["goes on a magical quest with animal friends", "learns the meaning of friendship",
                   "saves an enchanted kingdom", "sings through a colorful fairy-tale land"]),
    "Documentary": (0.55, ["Truth", "Planet", "Voices", "Frontier", "Archive", "Witness"],
                    ["this documentary", "a filmmaker", "award-winning journalists", "a team of scientists"],
                    ["examines the history of a forgotten war", "follows real people through a crisis",
                     "investigates climate change across the oceans", "interviews survivors and experts"]),
    "Thriller": (0.00, ["Conspiracy", "Witness", "Deception", "Protocol", "Alibi", "Vertigo"],
                 ["a paranoid journalist", "an undercover agent", "a detective", "a lawyer with a secret"],
                 ["uncovers a deadly conspiracy", "is framed for a murder", "hunts a serial killer",
                  "races against time to expose a traitor"]),
    "Western": (0.15, ["Outlaw", "Frontier", "Canyon", "Gunslinger", "Sheriff", "Dust"],
                ["a lone gunslinger", "a frontier sheriff", "a band of outlaws", "a rancher's daughter"],
                ["rides into a lawless desert town", "seeks revenge across the prairie",
                 "defends the homestead from bandits", "leads a cattle drive through hostile land"]),
}  # fmt: skip
GENRE_NAMES = list(GENRES)
PARQUET_ABOVE = 2_000_000
# Effect sizes chosen so the baselines rank as on real ratings (RMSE: global > user mean > movie mean >
# user + movie bias) while user features and genre texts still carry signal.
USER_BIAS_SD, MOVIE_BIAS_SD, LATENT_DIM, LATENT_SD, NOISE_SD = 0.3, 0.45, 4, 0.45, 0.7  # ratings; above this 'auto' writes ratings.parquet
GENRE_QUALITY = np.array([g[0] for g in GENRES.values()])
SETTINGS = ["in a small town", "in New York", "during the war", "in the near future", "in the 1970s",
            "on a remote island", "in the countryside", "at a boarding school"]  # fmt: skip


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


def _movies(n: int, rng: np.random.Generator, missing_overview: float) -> tuple[pd.DataFrame, np.ndarray]:
    genre_mat = np.zeros((n, len(GENRES)), dtype=bool)
    titles, overviews, genres = [], [], []
    for i in range(n):
        k = rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])
        picked = rng.choice(len(GENRES), size=k, replace=False)
        genre_mat[i, picked] = True
        main = GENRES[GENRE_NAMES[picked[0]]]
        other = GENRES[GENRE_NAMES[picked[-1]]]
        title = f"The {main[1][rng.integers(len(main[1]))]} of {other[1][rng.integers(len(other[1]))]}"
        year = int(rng.integers(1930, 2001))
        titles.append(f"{title} ({year})")
        sentences = []
        for g in picked:
            _, _, subjects, events = GENRES[GENRE_NAMES[g]]
            subject = subjects[rng.integers(len(subjects))]
            event = events[rng.integers(len(events))]
            sentences.append(f"{subject[0].upper()}{subject[1:]} {event} {SETTINGS[rng.integers(len(SETTINGS))]}.")
        overviews.append(" ".join(sentences))
        genres.append("|".join(GENRE_NAMES[g] for g in picked))
    overview = pd.Series(overviews, dtype=object)
    overview[rng.random(n) < missing_overview] = None
    frame = pd.DataFrame(
        {"movie_id": np.arange(1, n + 1, dtype=np.int64), "title": titles, "overview": overview, "genres": genres}
    )
    return frame, genre_mat


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


def generate(users: int, movies: int, ratings: int, seed: int = 0, missing_overview: float = 0.02) -> dict:
    """The three tables (DataFrames) of a synthetic data set; same arguments, same tables."""
    rng = np.random.default_rng(seed)
    user_t = _users(users, rng)
    movie_t, genre_mat = _movies(movies, rng, missing_overview)
    u, m = _pairs(users, movies, ratings, rng)

    occ_effect = dict(zip(OCCUPATIONS, rng.normal(0.0, 0.25, len(OCCUPATIONS))))
    user_effect = (
        0.012 * (user_t["age"].to_numpy() - 30)
        + np.where(user_t["gender"].to_numpy() == "F", 0.15, -0.05)
        + user_t["occupation"].map(occ_effect).to_numpy()
        + rng.normal(0.0, USER_BIAS_SD, users)  # each user's own leniency, beyond their features
    )
    n_genres = genre_mat.sum(axis=1)
    # Genre quality (readable from the texts) plus each movie's own quality (not in its text).
    movie_effect = 1.4 * (genre_mat @ GENRE_QUALITY) / n_genres + rng.normal(0.0, MOVIE_BIAS_SD, movies)
    # Latent tastes: user x movie factors that neither features nor biases explain.
    user_factors = rng.normal(0.0, LATENT_SD, (users, LATENT_DIM))
    movie_factors = rng.normal(0.0, LATENT_SD, (movies, LATENT_DIM))
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
    return {"ratings": rating_t, "users": user_t, "movies": movie_t}


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _dat_bytes(frame: pd.DataFrame) -> bytes:
    rows = frame.astype(str).agg("::".join, axis=1)
    return ("\n".join(rows) + "\n").encode("latin-1")


def write_demo_data(
    out_dir: str | os.PathLike,
    users: int = 600,
    movies: int = 400,
    ratings: int = 40_000,
    seed: int = 0,
    layout: str = "csv",
    ratings_format: str = "auto",
) -> dict[str, Path]:
    """Write a generated data set in the notebook's CSV layout or MovieLens-1M's .dat layout.

    In the CSV layout the ratings are ``ratings.parquet`` when ``ratings_format`` is 'parquet', or
    'auto' and there are more than 2M of them (a 25M-row CSV is slow to write and to read).
    Each file is written atomically; returns the paths written."""
    tables = generate(users, movies, ratings, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ratings_format not in ("auto", "csv", "parquet"):
        raise ValueError(f"unknown ratings format {ratings_format!r}; use auto, csv or parquet")
    parquet = ratings_format == "parquet" or (ratings_format == "auto" and ratings > PARQUET_ABOVE)
    if layout == "csv":
        files = {
            **({"ratings.parquet": _parquet_bytes(tables["ratings"])} if parquet else {"ratings.csv": _csv_bytes(tables["ratings"])}),
            "users.csv": _csv_bytes(tables["users"]),
            "movies.csv": _csv_bytes(tables["movies"]),
        }
    elif layout == "ml-1m":
        users_t = tables["users"].copy()
        users_t["occupation"] = users_t["occupation"].map({n: i for i, n in enumerate(OCCUPATIONS)})
        movies_t = tables["movies"]
        overviews = movies_t.loc[movies_t["overview"].notna(), ["movie_id", "overview"]]
        files = {
            "ratings.dat": _dat_bytes(tables["ratings"]),
            "users.dat": _dat_bytes(users_t[["user_id", "gender", "age", "occupation", "zip"]]),
            "movies.dat": _dat_bytes(movies_t[["movie_id", "title", "genres"]]),
            "overviews.csv": _csv_bytes(overviews),
        }
    else:
        raise ValueError(f"unknown layout {layout!r}; use 'csv' or 'ml-1m'")
    written = {}
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        written[name] = out / name
    return written


@stage("demo-data", result=DemoFolder)
def demo_folder(users: int, movies: int, ratings: int, seed: int, cache_dir: str) -> DemoFolder:
    """Generate the demo data set once per (size, seed, code) into the cache; returns a reference to
    its folder (kind 'dir', so a cached result whose folder was removed is detected and regenerated)."""
    key = sha256_text(str(users), str(movies), str(ratings), str(seed), CODE_VERSION)[:16]
    out = Path(cache_dir).expanduser() / "demo-data" / key
    if not out.exists():
        run_logger(log).info("generating demo data: %d users, %d movies, %d ratings, seed %d", users, movies, ratings, seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(out.parent, key) as staging:
            write_demo_data(staging, users=users, movies=movies, ratings=ratings, seed=seed)
            try:
                os.rename(staging, out)  # the folder appears complete or not at all
            except OSError:  # a concurrent run got there first: same content
                pass
    return DemoFolder(path=str(out), sha256=dir_digest(out), kind="dir")
