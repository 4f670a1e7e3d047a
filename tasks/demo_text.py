"""The words of the generated movies: titles like real ones and grammatical overviews.

An overview says what the movie's genres are (who, what happens, what goes wrong), and — as real
overviews do — its tone: each of the generator's latent taste dimensions has two poles with their own
sentences (dark or light, quiet or spectacular, period or modern, intimate or epic), and a movie's
overview uses the pole of its factor on that dimension when the factor is clearly away from zero. A
"craft" sentence hints at the part of the movie's quality that its genres do not explain. So text
carries what genres cannot: a cold-start model that reads it can beat one that reads genres only.

Every subject is one person with a pronoun, every event is in the third person singular, so the
templates stay grammatical. ``short`` texts are one sentence per genre (the old demo, fast to embed);
``realistic`` texts are 60-120-word overviews (MovieLens overviews from TMDB run 40-130 words).
"""

from __future__ import annotations

import numpy as np

TEXT_LENGTHS = ("realistic", "short")

# genre: (quality, title nouns, protagonists (phrase, pronoun), events, complications)
GENRES: dict[str, tuple[float, list[str], list[tuple[str, str]], list[str], list[str]]] = {
    "Action": (-0.10, ["Strike", "Fury", "Bullet", "Velocity", "Siege", "Impact", "Hard Target", "Blackout"],
               [("a rogue commando", "he"), ("a retired cop", "he"), ("a getaway driver", "she"),
                ("a former special forces medic", "she")],
               ["fights through a hijacked train", "races to stop a bomb", "takes on a ruthless cartel",
                "survives a deadly car chase across the city"],
               ["must stay one step ahead of a corrupt police chief who wants the money back",
                "has twelve hours to get a witness across the border alive",
                "is the only one left who knows where the weapons are hidden"]),
    "Comedy": (-0.05, ["Wedding", "Trouble", "Roommates", "Vacation", "Mixup", "Party", "Big Break", "Best Man"],
               [("a hapless groom", "he"), ("an awkward substitute teacher", "she"), ("a lazy mail carrier", "he"),
                ("an overconfident wedding planner", "she")],
               ["stumbles into one misunderstanding after another", "throws the wildest party in town",
                "pretends to be someone else for a week", "gets stuck on a disastrous road trip"],
               ["has to keep the lie going in front of the whole family",
                "accidentally becomes the face of a national advertising campaign",
                "must win back a job that nobody else wanted"]),
    "Drama": (0.35, ["Silence", "Letters", "Inheritance", "Winter", "Grace", "Harbor", "Small Mercies", "Home"],
              [("a grieving widow", "she"), ("an estranged father", "he"), ("a young nurse", "she"),
               ("a struggling factory worker", "he")],
              ["confronts the past after a family tragedy", "fights for dignity and justice",
               "tries to rebuild a broken life", "faces a painful moral choice"],
              ["must decide whether to forgive the brother who left the family years ago",
               "learns that the factory that employs half the town is about to close",
               "begins to doubt everything about the people closest to home"]),
    "Horror": (-0.55, ["Haunting", "Blood", "Crypt", "Nightmare", "Possession", "Shadows", "The Cellar", "Hollow"],
               [("a paranormal investigator", "she"), ("a lonely caretaker", "he"), ("a babysitter", "she"),
                ("a night-shift security guard", "he")],
               ["is hunted by a demon in an abandoned asylum", "awakens an ancient evil",
                "is stalked by a masked killer", "hears whispers from the cellar at night"],
               ["discovers that the previous owners never actually left the house",
                "finds the same symbol carved into every door of the building",
                "realizes that the thing in the woods only comes for those who look at it"]),
    "Romance": (0.10, ["Love", "Kiss", "Heart", "Summer", "Promise", "Paris", "Sweethearts", "Second Chances"],
                [("a shy bookseller", "she"), ("a widowed architect", "he"), ("a travelling violinist", "she"),
                 ("a love-struck poet", "he")],
                ["falls in love over one unforgettable summer", "finds romance against all odds",
                 "rekindles an old passion", "exchanges secret love letters with a stranger"],
                ["must choose between a safe engagement and a love that could change everything",
                 "has only until the end of the season before the ship sails",
                 "keeps running into the one person it seemed wiser to forget"]),
    "Sci-Fi": (0.05, ["Galaxy", "Android", "Orbit", "Quantum", "Nebula", "Colony", "Event Horizon", "Signal"],
               [("a starship captain", "she"), ("a rogue android", "it"), ("a time-travelling physicist", "he"),
                ("the last engineer on a Mars colony", "she")],
               ["discovers an alien signal from deep space", "leads a rebellion against the machines",
                "travels through a wormhole", "explores a distant planet"],
               ["learns that the mission was never meant to return to Earth",
                "must repair the reactor before the colony runs out of air",
                "starts receiving messages sent from thirty years in the future"]),
    "Animation": (0.25, ["Kingdom", "Dragon", "Adventure", "Toy", "Forest", "Wish", "Little Wings", "Moonlight"],
                  [("a brave little fox", "he"), ("a talking toy robot", "it"), ("a young princess", "she"),
                   ("a curious penguin", "he")],
                  ["goes on a magical quest with animal friends", "learns the meaning of friendship",
                   "sets out to save an enchanted kingdom", "sings through a colorful fairy-tale land"],
                  ["must find the way home before the first snow closes the mountain pass",
                   "has to convince a grumpy old owl to share the secret of the map",
                   "discovers that being small can be the greatest strength of all"]),
    "Documentary": (0.55, ["Truth", "Planet", "Voices", "Frontier", "Archive", "Witness", "Deep Water", "Roots"],
                    [("a documentary filmmaker", "he"), ("a veteran war photographer", "she"), ("an investigative reporter", "he"),
                     ("a marine biologist", "she")],
                    ["examines the history of a forgotten war", "follows ordinary people through a crisis",
                     "investigates climate change across the oceans", "interviews survivors and experts"],
                    ["draws on rare archive footage and years of interviews",
                     "spends three years with the families at the centre of the story",
                     "asks what the official record left out"]),
    "Thriller": (0.00, ["Conspiracy", "Witness", "Deception", "Protocol", "Alibi", "Vertigo", "Dead Drop", "Exposure"],
                 [("a paranoid journalist", "he"), ("an undercover agent", "she"), ("a homicide detective", "he"),
                  ("a defense lawyer with a secret", "she")],
                 ["uncovers a deadly conspiracy", "is framed for a murder", "hunts a serial killer",
                  "races against time to expose a traitor"],
                 ["cannot tell which colleague is working for the other side",
                  "receives a photograph that proves the victim is still alive",
                  "must testify before the only other witness disappears"]),
    "Western": (0.15, ["Outlaw", "Frontier", "Canyon", "Gunslinger", "Sheriff", "Dust", "High Noon", "Rio Bravo"],
                [("a lone gunslinger", "he"), ("a frontier sheriff", "he"), ("a rancher's daughter", "she"),
                 ("a stagecoach driver", "he")],
                ["rides into a lawless desert town", "seeks revenge across the prairie",
                 "defends the homestead from bandits", "leads a cattle drive through hostile land"],
                ["has until the noon train arrives to find anyone brave enough to help",
                 "must bring a wanted man to trial through three hundred miles of desert",
                 "faces the gang that burned the family ranch to the ground"]),
}  # fmt: skip
GENRE_NAMES = list(GENRES)

# One pair of poles per latent taste dimension: (negative pole sentences, positive pole sentences).
THEMES: list[tuple[list[str], list[str]]] = [
    (["The story grows darker with every chapter, and not everyone makes it out alive.",
      "It is a bleak, violent and unsparing look at what people do when nobody is watching.",
      "Grief and guilt hang over every scene, and the ending offers little comfort.",
      "The film lingers on cruelty and loss, and it never looks away."],
     ["It is a warm, funny and big-hearted story for the whole family.",
      "Along the way there is plenty of laughter, music and unexpected kindness.",
      "The tone stays light and hopeful, even when things go wrong.",
      "It is a cheerful celebration of friendship, second chances and small victories."]),
    (["Told slowly and quietly, the film trusts its audience with long silences and hard questions.",
      "It is a patient, thoughtful study of memory, conscience and the choices that define us.",
      "The film unfolds through long conversations, letters and small gestures.",
      "Ideas matter more than action here, and the puzzle rewards close attention."],
     ["Explosive set pieces follow one another at a breathless pace.",
      "The film is packed with spectacular stunts, chases and state-of-the-art visual effects.",
      "It is a loud, fast and relentless ride from the first minute to the last.",
      "Huge battles and daring escapes keep the tension high until the final showdown."]),
    (["Set in a carefully recreated past, it brings the manners and costumes of another century to life.",
      "The period detail is rich, from the horse-drawn carriages to the candlelit ballrooms.",
      "It is a story about tradition, old families and a world that is about to disappear.",
      "The film is based on real events from more than a hundred years ago."],
     ["It is a sleek, modern story of screens, startups and city nights.",
      "Smartphones, social media and surveillance cameras are everywhere in this very contemporary tale.",
      "Set against glass towers and neon streets, it feels like tomorrow's news.",
      "The technology at the heart of the story is only a few years away."]),
    (["It is an intimate portrait of a single household over one long weekend.",
      "Most of the film takes place in one small apartment between two people.",
      "The focus never leaves its lead, whose every doubt the camera follows closely.",
      "It is a small, personal story about the people we keep at a distance."],
     ["It is a sweeping epic that spans three generations and two continents.",
      "A large ensemble cast carries several stories that slowly come together.",
      "Armies, empires and the fate of nations hang in the balance.",
      "The story crosses oceans, deserts and decades on a truly grand scale."]),
]  # fmt: skip
CRAFT = (
    ["The script leans on familiar clichés, and the twists can be seen coming from a long way off.",
     "It is a by-the-numbers sequel that recycles the best moments of the original.",
     "The plot is thin and the jokes are stretched over a long running time.",
     "It was shot quickly on a shoestring budget, and it shows."],
    ["Critics praised its sharp writing and a career-best lead performance.",
     "It won several major awards, including best screenplay.",
     "It is a beautifully acted and carefully crafted film that has become a classic.",
     "Its clever script and memorable characters earned it a devoted following."],
)  # fmt: skip
# Tags (the 10M and CSV releases' tags files): short lowercase phrases per genre, per pole of each
# taste dimension (in THEMES' order) and per craft pole, so a movie's tags say what its overview says.
GENRE_TAGS: dict[str, list[str]] = {
    "Action": ["action", "explosions", "car chase", "martial arts", "shootout"],
    "Comedy": ["funny", "quirky", "slapstick", "witty", "hilarious"],
    "Drama": ["drama", "tearjerker", "moving", "character study", "melancholy"],
    "Horror": ["horror", "scary", "gore", "creepy", "haunted house"],
    "Romance": ["romance", "love story", "romantic", "chick flick", "sweet"],
    "Sci-Fi": ["sci-fi", "aliens", "space", "time travel", "dystopia"],
    "Animation": ["animation", "animated", "cartoon", "talking animals", "fairy tale"],
    "Documentary": ["documentary", "informative", "true story", "interviews", "archive footage"],
    "Thriller": ["thriller", "suspense", "twist ending", "conspiracy", "serial killer"],
    "Western": ["western", "cowboys", "gunfight", "wild west", "revenge"],
}  # fmt: skip
THEME_TAGS: list[tuple[list[str], list[str]]] = [
    (["dark", "bleak", "violent", "depressing"], ["feel-good", "heartwarming", "family", "uplifting"]),
    (["slow burn", "thought-provoking", "cerebral", "dialogue driven"],
     ["action packed", "fast paced", "special effects", "spectacle"]),
    (["period piece", "costume drama", "historical", "based on true events"],
     ["modern", "technology", "social media", "urban"]),
    (["intimate", "small cast", "claustrophobic", "chamber piece"],
     ["epic", "sweeping", "ensemble cast", "multiple storylines"]),
]  # fmt: skip
CRAFT_TAGS = (["predictable", "overrated", "cheesy", "boring"], ["masterpiece", "great acting", "classic", "clever"])
CONNECTORS = ["Meanwhile,", "At the same time,", "Before long,", "Soon after,", "But when trouble comes,"]
SETTINGS = ["in a small town", "in New York", "during the Second World War", "in the near future",
            "in the 1970s", "on a remote island", "in the countryside", "at a boarding school",
            "in a crumbling seaside hotel", "in Los Angeles", "in a mining town in Montana", "in Victorian London"]  # fmt: skip
CLOSERS = ["What follows is a story about loyalty, courage and the price of ambition.",
           "Nothing will ever be the same again.",
           "It is a story about family and the secrets we keep from the people we love.",
           "Some debts can only be paid in full.",
           "The truth turns out to be stranger than anyone expected.",
           "In the end, everyone has to decide what they are willing to lose."]  # fmt: skip
TITLE_WORDS = ["Midnight", "Eternal", "Crimson", "Last", "Lost", "Silent", "Golden", "Wild", "Broken", "Secret"]
NAMES = ["Sabrina", "Casablanca", "Marty", "Rebecca", "Nell", "Tom", "Madeline", "Harvey", "Juno", "Roxanne"]
PRONOUN_OBJECT = {"he": "him", "she": "her", "it": "it"}


def _pick(options: list, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def title(genres: list[str], year: int, rng: np.random.Generator) -> str:
    """A title in one of the shapes real ones take: 'Heat', 'The Firm', 'Dangerous Minds',
    'The Name of the Rose', 'Sabrina', 'Die Hard 2', 'Alien: Resurrection' — with the year."""
    main = GENRES[genres[0]][1]
    other = [w.removeprefix("The ") for w in GENRES[genres[-1]][1]]
    shape = int(rng.integers(8))
    if shape == 0:
        text = _pick(main, rng)
    elif shape == 1:
        word = _pick(main, rng)
        text = word if " " in word else f"The {word}"
    elif shape == 2:
        text = f"{_pick(TITLE_WORDS, rng)} {_pick(main, rng).removeprefix('The ')}"
    elif shape == 3:
        word = _pick(main, rng)
        text = f"{word} of the {_pick([w for w in other if w not in word] or other, rng)}"
    elif shape == 4:
        text = _pick(NAMES, rng)
    elif shape == 5:
        text = f"{_pick(main, rng)} {int(rng.integers(2, 4))}"
    elif shape == 6:
        text = f"{_pick(main, rng)}: {_pick(TITLE_WORDS, rng)} {_pick(other, rng)}"
    else:
        text = f"{_pick(NAMES, rng)}'s {_pick(other, rng)}"
    return f"{text} ({year})"


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _genre_sentences(genres: list[str], rng: np.random.Generator, realistic: bool) -> list[str]:
    sentences = []
    for i, name in enumerate(genres):
        _, _, people, events, complications = GENRES[name]
        who, pronoun = _pick(people, rng)
        where = _pick(SETTINGS, rng)
        if i == 0:
            sentences.append(f"{_capital(where)}, {who} {_pick(events, rng)}.")
        elif realistic:
            sentences.append(f"{_pick(CONNECTORS, rng)} {who} {_pick(events, rng)} {where}.")
        else:
            sentences.append(f"{_capital(who)} {_pick(events, rng)} {where}.")
        if realistic:
            sentences.append(f"{_capital(pronoun)} {_pick(complications, rng)}.")
    return sentences


def overview(
    genres: list[str], factors: np.ndarray, craft: float, factor_sd: float, craft_sd: float,
    rng: np.random.Generator, length: str = "realistic",
) -> str:
    """The overview of one movie. ``factors`` are its latent tastes; a theme sentence is written for
    each dimension whose factor is beyond half a standard deviation (its pole by the sign), a craft
    sentence when |craft| is beyond half a standard deviation. ``short``: genre sentences only."""
    if length not in TEXT_LENGTHS:
        raise ValueError(f"unknown text length {length!r}; use {' or '.join(TEXT_LENGTHS)}")
    realistic = length == "realistic"
    sentences = _genre_sentences(genres, rng, realistic)
    if not realistic:
        return " ".join(sentences)
    tone = [_pick(THEMES[d][int(f > 0)], rng) for d, f in enumerate(factors) if abs(f) > 0.5 * factor_sd]
    order = rng.permutation(len(tone))
    sentences += [tone[i] for i in order]
    if abs(craft) > 0.5 * craft_sd:
        sentences.append(_pick(CRAFT[int(craft > 0)], rng))
    closers = list(rng.permutation(CLOSERS))
    words = sum(len(s.split()) for s in sentences)
    while words < 60 and closers:  # pad short overviews with plot-neutral sentences
        sentences.append(closers.pop())
        words += len(sentences[-1].split())
    while words > 120 and len(sentences) > 3:  # drop from the middle of long ones
        words -= len(sentences.pop(len(sentences) // 2).split())
    return " ".join(sentences)
