"""Embedding speed of the encoder alone: texts/s per device, precision and batch size, and how far
each precision's vectors are from float32's.

    .venv/bin/python benchmarks/embed_speed.py --texts 200 --device cpu --precision float32,bfloat16
    python3 benchmarks/embed_speed.py --model .gpu/model --device cuda --texts 20000 \
        --precision float32,bfloat16,float16 --batch-size 256

Imports only tasks.encoder from the project (no Prefect), so it runs on a machine that has torch and
sentence-transformers but not the pipeline's other dependencies. The texts are generated here
(seeded, deterministic): half movie titles ("The Silent Harbor (1987)"), half 60-120-word overviews
built from sentence templates, embedded as the pipeline does: titles and overviews in separate
chunks of 256 texts, one encoder call per chunk.

For each precision: one warm-up call on 64 texts (the model is loaded once, before any timing), then
the clock runs over all chunks (torch.cuda.synchronize before it stops on CUDA). "min cos" is the
smallest cosine, over all texts, between that precision's vectors and float32's (float32 vectors are
computed untimed when float32 is not in the list).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from tasks import encoder  # noqa: E402 - standard library, numpy and (lazily) torch only: runs without Prefect
from tasks.encoder import pick_device, pick_precision, resolve_model, sentence_encoder  # noqa: E402

CHUNK = 256
WARMUP = 64
PRECISIONS = ("auto", "float32", "bfloat16", "float16")

# ---------------------------------------------------------------- text generation (deterministic)

ADJECTIVES = [
    "Silent",
    "Broken",
    "Last",
    "Hidden",
    "Golden",
    "Dark",
    "Crimson",
    "Lonely",
    "Wild",
    "Forgotten",
    "Secret",
    "Distant",
    "Burning",
    "Frozen",
    "Little",
    "Lost",
    "Midnight",
    "Electric",
    "Savage",
    "Quiet",
    "Bitter",
    "Endless",
    "Hollow",
    "Restless",
    "Sweet",
    "Northern",
    "Final",
    "Invisible",
    "Dangerous",
    "Perfect",
    "Strange",
    "Shattered",
    "Sacred",
    "Eternal",
    "Velvet",
    "Iron",
    "Paper",
    "Glass",
]
NOUNS = [
    "Harbor",
    "River",
    "Kingdom",
    "Garden",
    "Road",
    "Summer",
    "Winter",
    "Heart",
    "City",
    "Night",
    "Promise",
    "Mirror",
    "Storm",
    "Island",
    "Empire",
    "Shadow",
    "Station",
    "House",
    "Witness",
    "Stranger",
    "Season",
    "Ghost",
    "Frontier",
    "Valley",
    "Circus",
    "Symphony",
    "Hotel",
    "Machine",
    "Letter",
    "Horizon",
    "Bridge",
    "Forest",
    "Desert",
    "Castle",
    "Affair",
    "Hunter",
    "Dream",
    "Voyage",
    "Secret",
    "Game",
    "Crown",
]
PLURALS = [
    "Wolves",
    "Angels",
    "Strangers",
    "Brothers",
    "Sisters",
    "Lovers",
    "Thieves",
    "Soldiers",
    "Kings",
    "Children",
    "Ghosts",
    "Dreamers",
    "Outlaws",
    "Heroes",
    "Friends",
    "Neighbors",
    "Saints",
    "Liars",
    "Giants",
    "Rivers",
]
NAMES = [
    "Anna",
    "Michael",
    "Clara",
    "Jack",
    "Elena",
    "Sam",
    "Harold",
    "Nora",
    "Victor",
    "Lucy",
    "Daniel",
    "Maya",
    "Thomas",
    "Rosa",
    "Frank",
    "Iris",
    "George",
    "Leila",
    "Oscar",
    "Sofia",
    "Walter",
    "Grace",
    "Henry",
    "Julia",
    "Marcus",
    "Ruth",
    "Peter",
    "Hannah",
    "Felix",
    "Alice",
]
SURNAMES = [
    "Miller",
    "Novak",
    "Carter",
    "Brennan",
    "Moreau",
    "Hale",
    "Lindqvist",
    "Okafor",
    "Russo",
    "Whitaker",
    "Kowalski",
    "Reyes",
]
PLACES = [
    "Chicago",
    "Paris",
    "a small fishing village",
    "the Scottish Highlands",
    "Tokyo",
    "a remote Alaskan town",
    "Berlin",
    "the Mississippi delta",
    "a crumbling Venetian palace",
    "Los Angeles",
    "a mining town in Nevada",
    "Buenos Aires",
    "the suburbs of London",
    "a village on a Mediterranean island",
    "Hong Kong",
    "rural Montana",
]
JOBS = [
    "detective",
    "schoolteacher",
    "jazz pianist",
    "retired boxer",
    "young lawyer",
    "war photographer",
    "nurse",
    "con artist",
    "small-town sheriff",
    "struggling novelist",
    "ballet dancer",
    "truck driver",
    "museum curator",
    "disgraced surgeon",
    "television reporter",
    "chef",
    "pilot",
    "bank clerk",
    "marine biologist",
    "priest",
]
CITIES = [
    "Paris",
    "Rome",
    "Berlin",
    "Tokyo",
    "Chicago",
    "Havana",
    "Vienna",
    "Casablanca",
    "Memphis",
    "Shanghai",
    "Lisbon",
    "Brooklyn",
]
RELATIVES = [
    "estranged father",
    "younger sister",
    "old friend",
    "former partner",
    "mother",
    "best friend",
    "ex-wife",
    "son",
]
EVENTS = [
    "a mysterious murder",
    "the disappearance of a child",
    "a failed bank robbery",
    "a forbidden love affair",
    "a political scandal",
    "an inheritance dispute",
    "a deadly epidemic",
    "a stolen painting",
    "a plane crash",
    "the outbreak of war",
    "a high-stakes poker game",
    "a family secret",
    "a corrupt election",
    "a kidnapping",
]
DECADES = ["1920s", "1930s", "1940s", "1950s", "1960s", "1970s", "1980s", "1990s"]
FEELINGS = [
    "guilt",
    "ambition",
    "grief",
    "jealousy",
    "loyalty",
    "fear",
    "hope",
    "revenge",
    "loneliness",
    "pride",
]

TITLE_TEMPLATES = (
    "The {adj} {noun}",
    "{noun}",
    "The {noun} of {name}",
    "{adj} {plural}",
    "A {adj} {noun} in {city}",
    "The Last {noun}",
    "{name} and the {adj} {noun}",
    "Return to the {noun}",
    "{plural} of the {adj} {noun}",
    "Beyond the {noun}",
    "{name} {surname}",
    "When the {plural} Come Home",
    "The {noun} {noun2}",
    "Night of the {adj} {plural}",
)
OVERVIEW_TEMPLATES = (
    "In the {decade}, {name} {surname}, a {job} in {place}, is drawn into {event}.",
    "When {event} shakes {place}, {name} must confront the {feeling} that has shaped {his} life.",
    "{name}, a {job} haunted by {his} past, returns to {place} after twenty years away.",
    "{His} {relative} arrives unannounced, carrying a secret that could destroy everything they have built.",
    "As the investigation deepens, {name} discovers that nobody in {place} is quite who they seem.",
    "Torn between {feeling} and {feeling2}, {he} makes a choice that will change the lives of everyone around {him}.",
    "With the help of a {job} named {name2}, {he} sets out to uncover the truth about {event}.",
    "What begins as a simple favor quickly spirals into a dangerous game of lies and betrayal.",
    "Meanwhile, {his} {relative} struggles to keep the family together as money runs out and winter approaches.",
    "Based on a true story, the film follows {name} through the most difficult year of {his} life.",
    "Set against the backdrop of {place} in the {decade}, this is a story about {feeling}, family and second chances.",
    "{name} and {name2} could not be more different, but {event} forces them to work together.",
    "Everything changes the night {name} meets {name2}, a {job2} with nothing left to lose.",
    "Every decision {he} makes brings {him} closer to the people {he} has spent years trying to avoid.",
    "When the police refuse to help, {he} takes matters into {his} own hands.",
    "Years later, a letter from {his} {relative} reopens old wounds and raises questions no one wants to answer.",
    "The closer {he} gets to the truth, the more {he} realizes how much {he} stands to lose.",
    "Along the way, {he} learns that courage is not the absence of fear but the decision to act despite it.",
    "A quiet, tender portrait of {feeling} and forgiveness, the film was shot on location in {place}.",
)


def _pick(seq, rng: np.random.Generator):
    return seq[int(rng.integers(len(seq)))]


def _protagonist(rng: np.random.Generator) -> dict[str, str]:
    """Who an overview is about: one name, place, decade and set of pronouns for all its sentences."""
    female = bool(rng.integers(2))
    return {
        "name": _pick(NAMES, rng),
        "surname": _pick(SURNAMES, rng),
        "place": _pick(PLACES, rng),
        "decade": _pick(DECADES, rng),
        "job": _pick(JOBS, rng),
        "event": _pick(EVENTS, rng),
        "he": "she" if female else "he",
        "him": "her" if female else "him",
        "his": "her" if female else "his",
        "His": "Her" if female else "His",
    }


def _fill(
    template: str, rng: np.random.Generator, fixed: dict[str, str] | None = None
) -> str:
    slots = {
        "adj": _pick(ADJECTIVES, rng),
        "noun": _pick(NOUNS, rng),
        "noun2": _pick(NOUNS, rng),
        "plural": _pick(PLURALS, rng),
        "name": _pick(NAMES, rng),
        "name2": _pick(NAMES, rng),
        "surname": _pick(SURNAMES, rng),
        "city": _pick(CITIES, rng),
        "place": _pick(PLACES, rng),
        "job": _pick(JOBS, rng),
        "job2": _pick(JOBS, rng),
        "relative": _pick(RELATIVES, rng),
        "event": _pick(EVENTS, rng),
        "decade": _pick(DECADES, rng),
        "feeling": _pick(FEELINGS, rng),
        "feeling2": _pick(FEELINGS, rng),
    }
    slots.update(fixed or {})
    return template.format(**slots)


def make_title(rng: np.random.Generator) -> str:
    while True:
        title = _fill(TITLE_TEMPLATES[int(rng.integers(len(TITLE_TEMPLATES)))], rng)
        if 2 <= len(title.split()) <= 6:
            return f"{title} ({int(rng.integers(1925, 2024))})"


def make_overview(rng: np.random.Generator) -> str:
    target = int(rng.integers(60, 121))
    who = _protagonist(rng)
    sentences: list[str] = []
    words = 0
    order = rng.permutation(len(OVERVIEW_TEMPLATES))
    for i in order:  # each template at most once per overview
        sentence = _fill(OVERVIEW_TEMPLATES[int(i)], rng, who)
        n = len(sentence.split())
        if words + n > 120:
            continue
        sentences.append(sentence)
        words += n
        if words >= target:
            break
    return " ".join(sentences)


def make_texts(n: int, seed: int = 20240601) -> tuple[list[str], list[str]]:
    """n texts: n//2 titles and n - n//2 overviews, the same for every run with the same n and seed."""
    rng = np.random.default_rng(seed)
    titles = [make_title(rng) for _ in range(n // 2)]
    overviews = [make_overview(rng) for _ in range(n - n // 2)]
    return titles, overviews


# ---------------------------------------------------------------- benchmark


def parse_precisions(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ["auto"]:
        for p in value.split(","):
            p = p.strip()
            if not p:
                continue
            if p not in PRECISIONS:
                raise SystemExit(
                    f"--precision {p!r}: choose from {', '.join(PRECISIONS)}"
                )
            out.append(p)
    return out


def hardware_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{name} ({torch.get_num_threads()} threads)"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def embed_all(encode, chunks: list[list[str]], device: str) -> tuple[np.ndarray, float]:
    """Vectors of all chunks (in order) and the seconds they took, GPU work included."""
    vectors = []
    sync(device)
    started = time.perf_counter()
    for chunk in chunks:
        vectors.append(encode(chunk))
    sync(device)
    return np.concatenate(vectors), time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="all-MiniLM-L6-v2", help="model name or local folder"
    )
    parser.add_argument(
        "--device", default="auto", help="auto | cpu | cuda | cuda:N | mps"
    )
    parser.add_argument(
        "--precision",
        action="append",
        help="auto|float32|bfloat16|float16; repeatable or a comma list",
    )
    parser.add_argument(
        "--texts",
        type=int,
        default=4000,
        help="number of texts (half titles, half overviews)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    import sentence_transformers
    import torch
    import transformers

    device = pick_device(args.device)
    precisions = list(
        dict.fromkeys(
            pick_precision(p, device) for p in parse_precisions(args.precision)
        )
    )
    source = resolve_model(args.model)
    titles, overviews = make_texts(args.texts)
    texts = titles + overviews
    chunks = [titles[i : i + CHUNK] for i in range(0, len(titles), CHUNK)]
    chunks += [overviews[i : i + CHUNK] for i in range(0, len(overviews), CHUNK)]
    words = [len(t.split()) for t in overviews] or [0]

    print(
        f"python {platform.python_version()}  torch {torch.__version__}  "
        f"sentence-transformers {sentence_transformers.__version__}  transformers {transformers.__version__}"
        + (f"  cuda {torch.version.cuda}" if device.startswith("cuda") else "")
    )
    print(f"model {args.model} -> {source.path}")
    print(
        f"texts {len(texts)}: {len(titles)} titles, {len(overviews)} overviews of {min(words)}-{max(words)} words "
        f"(mean {np.mean(words):.0f}); chunks of {CHUNK}; batch size {args.batch_size}"
    )
    for example in titles[:2] + overviews[:1]:
        print(f"  e.g. {example!r}")

    load_started = time.perf_counter()
    encoders = {
        p: sentence_encoder(
            source, device, args.batch_size, normalize=True, precision=p
        )
        for p in precisions
    }
    model = encoder.loaded_model(source, device)
    print(
        f"model load {time.perf_counter() - load_started:.1f} s; weights dtype {next(model.parameters()).dtype}; "
        f"max_seq_length {getattr(model, 'max_seq_length', '?')}"
    )

    results: dict[str, tuple[float, float, float, np.ndarray]] = {}
    order = sorted(
        precisions, key=lambda p: p != "float32"
    )  # float32 first: the reference
    for precision in order:
        encode = encoders[precision]
        encode(
            texts[: WARMUP // 2] + overviews[: WARMUP // 2]
        )  # warm-up: kernels, autocast caches, allocator
        sync(device)
        title_chunks = chunks[: (len(titles) + CHUNK - 1) // CHUNK]
        overview_chunks = chunks[len(title_chunks) :]
        v_titles, s_titles = (
            embed_all(encode, title_chunks, device)
            if title_chunks
            else (np.empty((0, 0)), 0.0)
        )
        v_over, s_over = (
            embed_all(encode, overview_chunks, device)
            if overview_chunks
            else (np.empty((0, 0)), 0.0)
        )
        vectors = np.concatenate([v for v in (v_titles, v_over) if v.size])
        results[precision] = (s_titles, s_over, s_titles + s_over, vectors)
        print(
            f"  {precision}: {len(texts) / (s_titles + s_over):,.0f} texts/s",
            flush=True,
        )

    if "float32" in results:
        reference = results["float32"][3]
    else:  # untimed reference
        encode_f32 = sentence_encoder(
            source, device, args.batch_size, normalize=True, precision="float32"
        )
        reference = np.concatenate([encode_f32(chunk) for chunk in chunks])

    name = hardware_name(device)
    header = (
        f"{'device':<8} {'hardware':<40} {'precision':<9} {'batch':>5} {'texts':>6} {'title s':>8} "
        f"{'overview s':>10} {'total s':>8} {'texts/s':>9} {'min cos vs f32':>14}"
    )
    print()
    print(header)
    print("-" * len(header))
    for precision in precisions:
        s_titles, s_over, seconds, vectors = results[precision]
        cos = float(np.min(np.sum(vectors * reference, axis=1)))  # both unit length
        print(
            f"{device:<8} {name[:40]:<40} {precision:<9} {args.batch_size:>5} {len(texts):>6} {s_titles:>8.2f} "
            f"{s_over:>10.2f} {seconds:>8.2f} {len(texts) / seconds:>9,.0f} {cos:>14.6f}"
        )
    if device.startswith("cuda"):
        print(f"\npeak GPU memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
