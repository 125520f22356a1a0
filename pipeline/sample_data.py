"""A deterministic synthetic marketplace: the project's embedded demo data.

`generate` builds an item catalog and an interaction log in memory from a `SampleDataConfig`;
`write_sample_data` writes them as `items.<ext>` and `events.<ext>` (JSONL, CSV or Parquet).

The data is meant to behave like a real marketplace log and to be learnable:

* Items belong to one of up to 20 categories (sometimes a second one too) and to one of four
  latent "styles" within their category (budget vs professional, hiking vs camping, ...). Titles
  and descriptions are built from per-category vocabularies and state the item's kind, style,
  material and use, so text carries the same signal as behaviour.
* Users prefer one to three categories and, within each, some styles; the items they pick follow a
  Zipf-like popularity times their style affinity, so a text-aware model can beat popularity.
* Users have Poisson-many sessions of 2-10 events, minutes apart, mostly within the session's
  intent category, with a view -> click -> add_to_cart -> purchase funnel.
* A share of items is added near the end of the log (cold start); no event ever references an item
  before its `added_at`.

Everything derives from `numpy.random.default_rng(cfg.seed)`, so the same config gives
byte-identical files.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.config import SampleDataConfig

__all__ = [
    "EVENT_TYPES",
    "FORMATS",
    "LOG_START",
    "SampleData",
    "generate",
    "write_sample_data",
]

LOG_START = 1704067200
"""Start of the simulated log: 2024-01-01T00:00:00Z in epoch seconds."""

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
"""Event types, in funnel order."""

FORMATS = ("jsonl", "csv", "parquet")
"""File formats `write_sample_data` writes."""

ProgressFn = Callable[[int, int], Any]

_DAY = 86_400
_N_STYLES = 4
_CATEGORY_DELIMITER = "|"
_ITEM_FIELDS = ("item_id", "title", "description", "categories", "brand", "added_at")
_EVENT_FIELDS = ("user_id", "item_id", "timestamp", "event_type")

# Catalog shape.
_SECOND_CATEGORY_P = 0.2
_EMPTY_DESCRIPTION_P = 0.01
_ZIPF_EXPONENT = 1.0
_WARM_MAX_AGE_DAYS = 730
_COLD_WINDOW = (0.9, 0.97)  # Cold items are added within this share of the log.
_TITLE_SUFFIX_P = 0.3
_TITLE_STYLE_ADJECTIVE_P = 0.7  # Otherwise the title adjective is a generic one.
_TITLE_SUFFIXES = ("Pro", "Mini", "Plus", "XL", "2", "Lite", "Max", "Classic")
_SENTENCE_COUNT_P = (0.15, 0.35, 0.35, 0.15)  # 1, 2, 3 or 4 sentences.

# Users and sessions.
_PREFERRED_COUNT_P = (0.3, 0.45, 0.25)  # 1, 2 or 3 preferred categories.
_STYLE_CONCENTRATION = 0.3
_STYLE_FLOOR = 0.03
_EXPLORE_SESSION_P = 0.1
_OFF_INTENT_P = 0.15
_EXTRA_EVENTS_MEAN = 3.5
_MAX_SESSION_EVENTS = 10
_GAP_MIN_S, _GAP_MEAN_S, _GAP_MAX_S = 30, 150, 900
_SESSION_ROOM_S = 3 * 3600  # Room left at the end of the log for the last session.
_SESSION_PAUSE_S = 1800  # Minimal pause between two sessions of one user.
_NEW_VIEW_P = 0.45
_ADVANCE_P = (0.0, 0.9, 0.45, 0.5)  # Chance to move an item to funnel stage k.


@dataclass(frozen=True)
class _Category:
    """Vocabulary of one category; `styles` maps four style names to their adjectives."""

    name: str
    nouns: tuple[str, ...]
    materials: tuple[str, ...]
    uses: tuple[str, ...]
    styles: tuple[tuple[str, tuple[str, ...]], ...]
    brands: tuple[str, ...]
    extras: tuple[str, ...]


def _words(text: str) -> tuple[str, ...]:
    """Splits a comma-separated list of phrases."""
    return tuple(w.strip() for w in text.split(",") if w.strip())


def _category(
    name: str,
    nouns: str,
    materials: str,
    uses: str,
    styles: str,
    brands: str,
    extras: Sequence[str],
) -> _Category:
    """Builds a `_Category` from compact strings; styles read `name: adj, adj; name: ...`."""
    parsed = []
    for part in styles.split(";"):
        style, adjectives = part.split(":")
        parsed.append((style.strip(), _words(adjectives)))
    if len(parsed) != _N_STYLES:
        raise ValueError(f"category {name!r} needs {_N_STYLES} styles")
    return _Category(
        name=name,
        nouns=_words(nouns),
        materials=_words(materials),
        uses=_words(uses),
        styles=tuple(parsed),
        brands=_words(brands),
        extras=tuple(extras),
    )


_CATEGORIES: tuple[_Category, ...] = (
    _category(
        "kitchen",
        "chef knife, saucepan, cutting board, mixing bowl set, kettle, frying pan, spice rack, "
        "blender, measuring cup set, colander",
        "stainless steel, cast iron, bamboo, ceramic, tempered glass",
        "weeknight cooking, meal prep, hosting dinner parties, small apartment kitchens, "
        "family breakfasts",
        "budget: affordable, simple, no-frills; professional: pro-grade, heavy-duty, "
        "restaurant-quality; baking: precise, nonstick, oven-safe; eco: sustainable, "
        "plastic-free, low-waste",
        "Copperleaf, Hearthwell, Panvera, Saltbox, Kitchenry",
        ("Dishwasher safe and comfortable to hold.", "Designed so cleanup takes seconds."),
    ),
    _category(
        "outdoor",
        "tent, backpack, sleeping bag, trekking poles, headlamp, camp stove, water filter, hammock",
        "ripstop nylon, aluminium, merino wool, recycled polyester, titanium",
        "weekend trips in the woods, long trail days, alpine scrambles, backyard sleepovers, "
        "overnight canoe trips",
        "hiking: trail-ready, lightweight, breathable; camping: roomy, family-size, sturdy; "
        "ultralight: featherweight, packable, minimalist; winter: insulated, four-season, "
        "storm-proof",
        "Northpeak, Trailhead Co, Summitline, Ember & Pine, Ridgeway",
        ("Packs down small and sets up in minutes.", "Tested on rainy paths and windy ridges."),
    ),
    _category(
        "books",
        "paperback, hardcover edition, boxed set, anthology, illustrated edition, "
        "pocket edition, collector's edition, series starter",
        "a sewn binding, recycled paper, large print, illustrated chapters, a ribbon bookmark",
        "long commutes, rainy weekends, book clubs, bedtime reading, beach holidays",
        "mystery: gripping, twisty, suspenseful; fantasy: epic, magical, sweeping; "
        "nonfiction: insightful, well-researched, practical; children's: colourful, playful, "
        "heartwarming",
        "Lanternhouse, Quillmark, Inkwell Press, Bramble Books, Foxglove",
        ("Reviewers call it hard to put down.", "Includes a reading guide for discussion."),
    ),
    _category(
        "electronics",
        "wireless earbuds, bluetooth speaker, phone charger, smartwatch, webcam, power bank, "
        "mechanical keyboard, noise-cancelling headphones",
        "brushed aluminium, matte plastic, tempered glass, silicone, carbon fibre",
        "video calls, commuting, home workouts, streaming music, working from home",
        "budget: affordable, basic, dependable; premium: flagship, high-end, sleek; "
        "gaming: RGB-lit, low-latency, tournament-grade; audiophile: hi-fi, lossless, "
        "studio-tuned",
        "Voltra, Lumenix, Sonique, Gridline, Pulsar",
        ("Charges over USB-C and lasts all day.", "Pairs with phones and laptops in seconds."),
    ),
    _category(
        "toys",
        "building block set, teddy bear, floor puzzle, toy car, dollhouse, science kit, "
        "wooden train set, action figure",
        "solid wood, soft fleece, BPA-free plastic, recycled cardboard, felt",
        "rainy afternoons, imaginative play, early learning, birthday gifts, road trips",
        "educational: STEM, clever, hands-on; plush: cuddly, soft, huggable; "
        "collectible: limited-run, detailed, display-worthy; toddler: chunky, safe, first-years",
        "Tinker & Co, Jumblebee, Pipsqueak, Wonderloop, Marblehop",
        ("Meets safety standards for young children.", "Encourages creativity and curiosity."),
    ),
    _category(
        "garden",
        "pruning shears, garden hose, raised bed, watering can, seed starter kit, planter, "
        "compost bin, garden gloves",
        "galvanised steel, terracotta, cedar wood, recycled plastic, natural rubber",
        "vegetable growing, balcony gardens, lawn care, growing herbs, flower beds",
        "organic: natural, chemical-free, heirloom; urban: compact, balcony-sized, vertical; "
        "decorative: ornamental, charming, rustic; heavy-duty: rugged, commercial-grade, "
        "weatherproof",
        "Greenthumb, Mossgate, Fernly, Rootstock, Bloomfield",
        ("Stands up to sun, frost and rain.", "A must for this season's beds."),
    ),
    _category(
        "pet supplies",
        "pet bed, scratching post, leash, chew toy, food bowl, litter box, pet carrier, "
        "grooming brush",
        "memory foam, sisal rope, nylon webbing, natural rubber, stainless steel",
        "daily walks, indoor pets, puppy training, long car rides, senior pets",
        "dog: tough, chew-proof, walk-ready; cat: scratch-friendly, cosy, climbable; "
        "luxury: plush, designer, orthopaedic; eco: biodegradable, non-toxic, natural",
        "Pawsome, Whiskerway, Barkley, Tailwind Pets, Furrow",
        ("Machine washable and vet approved.", "Built to survive enthusiastic pets."),
    ),
    _category(
        "fitness",
        "exercise mat, dumbbell set, resistance bands, kettlebell, jump rope, foam roller, "
        "pull-up bar, exercise bike",
        "natural rubber, neoprene, cast iron, TPE foam, powder-coated steel",
        "home workouts, building muscle, morning stretches, marathon training, rest days",
        "yoga: grippy, calm, flexible; strength: heavy, solid, gym-grade; cardio: fast, "
        "sweat-ready, high-intensity; recovery: gentle, soothing, therapeutic",
        "Ironform, Flowstate, Pacemaker, Corelab, Liftwell",
        ("Non-slip and easy to store in a small flat.", "Helps you build a lasting routine."),
    ),
    _category(
        "beauty",
        "face serum, moisturiser, lipstick, hair dryer, makeup brush set, sunscreen, shampoo, "
        "eyeshadow palette",
        "hyaluronic acid, shea butter, vitamin C, argan oil, aloe vera",
        "morning routines, dry skin, nights out, everyday wear, sunny days",
        "natural: clean, plant-based, fragrance-free; luxury: indulgent, salon-quality, "
        "opulent; sensitive-skin: gentle, hypoallergenic, calming; bold: vibrant, long-wear, "
        "high-pigment",
        "Glowry, Petal & Pine, Luxe Lab, Dewdrop, Velvetine",
        ("Dermatologist tested and cruelty free.", "A little goes a long way."),
    ),
    _category(
        "music instruments",
        "acoustic guitar, ukulele, digital piano, drum pad, violin, harmonica, "
        "guitar string set, condenser microphone",
        "solid spruce, rosewood, maple, brass, carbon fibre",
        "first lessons, band practice, home recording, live gigs, busking",
        "beginner: easy-to-play, forgiving, starter; studio: professional, recording-ready, "
        "precise; vintage: retro, warm-toned, classic; travel: compact, portable, lightweight",
        "Harmonia, Tonewood, Riffmaster, Cadence, Bluebird Audio",
        ("Stays in tune through long sessions.", "Sounds rich whether you play soft or loud."),
    ),
    _category(
        "office",
        "desk organiser, notebook, office chair, desk lamp, fountain pen, monitor stand, "
        "filing cabinet, whiteboard",
        "walnut wood, recycled paper, mesh fabric, powder-coated steel, leather",
        "working from home, studying for exams, planning projects, taking meeting notes, "
        "small home offices",
        "minimalist: clean, understated, clutter-free; ergonomic: adjustable, supportive, "
        "posture-friendly; executive: polished, refined, leather-trimmed; student: affordable, "
        "colourful, practical",
        "Deskwise, Paperline, Officio, Nordtask, Inkbound",
        ("Keeps your desk tidy and your head clear.", "Assembles in minutes with no tools."),
    ),
    _category(
        "baby",
        "stroller, baby carrier, crib mobile, bottle set, changing mat, high chair, "
        "swaddle blanket, teething ring",
        "organic cotton, food-grade silicone, bamboo muslin, an aluminium frame, natural rubber",
        "newborn days, nap time, feeding time, city walks, family visits",
        "newborn: gentle, soft, snug; travel: foldable, lightweight, on-the-go; "
        "organic: natural, chemical-free, eco-conscious; nursery: decorative, soothing, pastel",
        "Littlenest, Cubby, Bloom Baby, Snugglebug, Acorn Kids",
        ("Tested to strict infant safety standards.", "Tired parents love how easy it is."),
    ),
    _category(
        "automotive",
        "dash cam, car vacuum, tyre inflator, seat cover set, phone mount, jump starter, "
        "floor mats, roof box",
        "heavy-duty rubber, ABS plastic, microfibre, aluminium, waterproof polyester",
        "long drives, daily commuting, winter driving, weekend detailing, family outings",
        "detailing: glossy, showroom-ready, meticulous; safety: reliable, crash-tested, "
        "emergency-ready; road-trip: spacious, rugged, long-haul; tech: smart, app-connected, "
        "high-resolution",
        "Roadwise, Autovance, Gearshift, Mileline, Torqued",
        ("Fits most cars, SUVs and vans.", "Installs in minutes without tools."),
    ),
    _category(
        "crafts",
        "watercolour set, knitting kit, sewing machine, embroidery hoop set, clay kit, "
        "sketchbook, calligraphy pen set, yarn bundle",
        "merino yarn, cotton canvas, air-dry clay, archival paper, natural pigments",
        "relaxing evenings, handmade gifts, learning a new hobby, kids' craft afternoons, "
        "seasonal decorations",
        "painting: vivid, artist-grade, blendable; textile: cosy, hand-knit, stitched; "
        "beginner: step-by-step, easy, starter; pottery: earthy, sculptural, hand-formed",
        "Makerly, Stitch & Co, Palette Lane, Craftory, Loomwell",
        ("Everything you need to start is in the box.", "Perfect for a slow, creative weekend."),
    ),
    _category(
        "games",
        "board game, card game, jigsaw puzzle, tile-laying game, dice game, chess set, "
        "dice set, escape room kit",
        "linen-finish cards, wooden pieces, thick cardboard tiles, metal coins, resin miniatures",
        "game nights, family evenings, two-player duels, get-togethers with friends, solo play",
        "strategy: deep, tactical, brain-burning; party: hilarious, fast, crowd-pleasing; "
        "family: friendly, easy-to-learn, all-ages; cooperative: team-based, story-driven, "
        "immersive",
        "Meeple House, Dicewright, Boardwalk Games, Gambit, Rookery",
        ("Plays in under an hour once you know the rules.", "Every session feels new."),
    ),
    _category(
        "home decor",
        "throw pillow, wall art print, table lamp, vase, area rug, wall mirror, candle set, "
        "photo frame",
        "linen, ceramic, rattan, brass, velvet",
        "living rooms, cosy bedrooms, entryways, housewarming gifts, rental apartments",
        "boho: eclectic, earthy, woven; modern: sleek, geometric, monochrome; "
        "farmhouse: rustic, weathered, homely; scandinavian: airy, pale, minimal",
        "Hearth & Home, Nestwell, Linden Lane, Atrium, Morrow",
        ("Adds warmth to any room.", "Looks great on its own or grouped with other pieces."),
    ),
    _category(
        "travel",
        "suitcase, travel backpack, packing cubes, neck pillow, toiletry bag, "
        "passport wallet, duffel bag, luggage tag set",
        "a polycarbonate shell, ballistic nylon, vegan leather, recycled polyester, canvas",
        "weekend getaways, business trips, long-haul flights, backpacking abroad, family holidays",
        "business: polished, professional, sleek; adventure: rugged, expandable, "
        "weather-ready; carry-on: cabin-sized, compact, lightweight; luxury: premium, designer, "
        "handcrafted",
        "Jetway, Wayfarer & Co, Nomadix, Passage, Globetrot",
        ("Fits most airline size limits.", "Organised pockets keep essentials within reach."),
    ),
    _category(
        "tools",
        "cordless drill, socket set, tape measure, claw hammer, circular saw, tool box, "
        "screwdriver set, stud finder",
        "hardened steel, a fibreglass handle, chrome vanadium, impact-resistant plastic, "
        "a rubber grip",
        "home repairs, furniture assembly, woodworking projects, renovation jobs, weekend fixes",
        "DIY: handy, homeowner-friendly, versatile; professional: jobsite-grade, heavy-duty, "
        "contractor-approved; woodworking: precise, fine-cut, craftsman; compact: "
        "pocket-sized, lightweight, space-saving",
        "Forgeline, Boltright, Ironclad, Sawtooth, Torque & Co",
        ("Backed by a lifetime warranty.", "Balanced in the hand for long jobs."),
    ),
    _category(
        "clothing",
        "rain jacket, hoodie, t-shirt, jeans, wool sweater, sneakers, dress, beanie",
        "organic cotton, merino wool, denim, waterproof shell fabric, linen",
        "everyday wear, cold mornings, rainy commutes, summer evenings, weekend errands",
        "casual: relaxed, comfortable, easy-going; athletic: sporty, moisture-wicking, "
        "stretchy; formal: tailored, elegant, smart; streetwear: oversized, graphic, bold",
        "Threadline, Northloom, Kinfolk Apparel, Urbanly, Seam & Stitch",
        ("Machine washable and holds its shape.", "True to size with a flattering fit."),
    ),
    _category(
        "coffee and tea",
        "gooseneck kettle, coffee machine, french press, coffee grinder, infuser, "
        "storage tin, thermal mug, matcha whisk set",
        "borosilicate glass, stainless steel, ceramic, bamboo, copper",
        "slow weekend mornings, office breaks, quiet afternoons, home barista practice, "
        "early starts",
        "espresso: intense, barista-grade, bold; pour-over: precise, bright, slow-brew; "
        "tea: calming, fragrant, loose-leaf; travel: insulated, leak-proof, portable",
        "Bean & Leaf, Roastery Row, Kettlewell, Crema, Steep Society",
        ("Brews a better cup than the cafe down the street.", "Easy to rinse and quick to dry."),
    ),
)

_GENERIC_ADJECTIVES = _words(
    "classic, essential, everyday, versatile, signature, original, deluxe, reliable, handy, "
    "well-made"
)
_COLOURS = _words(
    "black, slate grey, forest green, navy, sand, terracotta, white, charcoal, ocean blue, rose"
)

_LEAD_TEMPLATES = (
    "{an_adj} {style} {noun} made with {material}, built for {use}.",
    "This {style} {noun} from {brand} is {an_adj} choice for {use}.",
    "{brand}'s {adj} {noun} brings {an_style} touch to any {category} collection.",
    "Looking for {an_style} {noun}? This {adj} pick from our {category} range is made for {use}.",
    "The {title} is {an_style} {noun} designed for {use}.",
    "{an_style} {category} favourite: {an_adj} {noun} made with {material}.",
)
_BODY_TEMPLATES = (
    "Made with {material} that holds up to everyday use.",
    "Perfect for {use2}.",
    "Shoppers who love {style} {category} picks rate it highly.",
    "Its {adj2} design stands out on the shelf.",
    "Comes with a {years}-year warranty.",
    "Available in {colour}.",
    "Pairs well with other {style} pieces from {brand}.",
    "Customers say it is ideal for {use2}.",
    "Ships in plastic-free packaging.",
    "Easy to clean and simple to store.",
)


@dataclass(frozen=True)
class SampleData:
    """A generated catalog and interaction log.

    Attributes:
      items: Item records (`item_id`, `title`, `description`, `categories`, `brand`,
        `added_at`), ordered by `item_id`.
      events: Event records (`user_id`, `item_id`, `timestamp`, `event_type`), ordered by
        `timestamp` then `user_id`.
    """

    items: list[dict]
    events: list[dict]


@dataclass(frozen=True)
class _Catalog:
    """The catalog's latent structure used by the user simulation.

    Attributes:
      category: Primary category index (into the categories in use) of each item.
      style: Style index (0-3) of each item within its category.
      popularity: Zipf-like popularity weight of each item within its category.
      added_at: Epoch seconds each item became available.
      members: Item indices of each category, ascending.
      category_popularity: Global share of each category among users' preferences.
      warm_cumulative: Cumulative popularity of items available from the log start.
      warm_items: The items behind `warm_cumulative`.
    """

    category: np.ndarray
    style: np.ndarray
    popularity: np.ndarray
    added_at: np.ndarray
    members: tuple[np.ndarray, ...]
    category_popularity: np.ndarray
    warm_cumulative: np.ndarray
    warm_items: np.ndarray


@dataclass(frozen=True)
class _Taste:
    """A user's preferences: categories with weights and, per category, style item weights."""

    categories: np.ndarray
    weights: np.ndarray
    item_weights: dict[int, np.ndarray]


def _article(word: str) -> str:
    """Returns `word` with "a" or "an" in front of it."""
    head = word.split("-")[0]
    if head.isupper() and len(head) > 1:
        vowel_sound = head[0] in "AEFHILMNORSX"
    else:
        vowel_sound = word[:1].lower() in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {word}"


def _capitalize(text: str) -> str:
    """Upper-cases the first character only (keeps `RGB-lit`, `iPhone`)."""
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """Draws one element uniformly."""
    return options[int(rng.integers(len(options)))]


def _title(rng: np.random.Generator, brand: str, adjective: str, noun: str) -> str:
    """Builds a title like `Northpeak Lightweight Tent`, sometimes with a model suffix."""
    words = [brand, *(_capitalize(w) for w in adjective.split()), *noun.split()]
    title = " ".join(_capitalize(w) for w in words)
    if rng.random() < _TITLE_SUFFIX_P:
        title = f"{title} {_pick(rng, _TITLE_SUFFIXES)}"
    return title


def _describe(rng: np.random.Generator, fields: dict[str, str], extras: Sequence[str]) -> str:
    """Builds a 1-4 sentence description: a lead stating kind and style, then body sentences."""
    n_sentences = 1 + int(rng.choice(len(_SENTENCE_COUNT_P), p=_SENTENCE_COUNT_P))
    body = [*_BODY_TEMPLATES, *extras]
    chosen = rng.choice(len(body), size=n_sentences - 1, replace=False)
    sentences = [_pick(rng, _LEAD_TEMPLATES)] + [body[int(i)] for i in chosen]
    return " ".join(_capitalize(s.format(**fields)) for s in sentences)


def _item_record(
    rng: np.random.Generator,
    item_id: str,
    category: _Category,
    style: int,
    second_category: str | None,
    added_at: int,
) -> dict:
    """Draws the text of one item and returns its record."""
    style_name, style_adjectives = category.styles[style]
    brand = _pick(rng, category.brands)
    noun = _pick(rng, category.nouns)
    adjectives = (
        style_adjectives if rng.random() < _TITLE_STYLE_ADJECTIVE_P else _GENERIC_ADJECTIVES
    )
    title_adjective = _pick(rng, adjectives)
    title = _title(rng, brand, title_adjective, noun)
    adj, adj2 = (style_adjectives[int(i)] for i in rng.permutation(len(style_adjectives))[:2])
    use, use2 = (category.uses[int(i)] for i in rng.permutation(len(category.uses))[:2])
    fields = {
        "noun": noun,
        "style": style_name,
        "adj": adj,
        "adj2": adj2,
        "an_adj": _article(adj),
        "an_style": _article(style_name),
        "material": _pick(rng, category.materials),
        "use": use,
        "use2": use2,
        "brand": brand,
        "category": category.name,
        "title": title,
        "years": str(int(rng.integers(1, 6))),
        "colour": _pick(rng, _COLOURS),
    }
    description = _describe(rng, fields, category.extras)
    if rng.random() < _EMPTY_DESCRIPTION_P:
        description = ""
    categories = [category.name] if second_category is None else [category.name, second_category]
    return {
        "item_id": item_id,
        "title": title,
        "description": description,
        "categories": categories,
        "brand": brand,
        "added_at": int(added_at),
    }


def _id_width(n: int, minimum: int) -> int:
    """Digits needed for zero-padded ids `0 .. n-1`."""
    return max(minimum, len(str(max(n - 1, 0))))


def _assign_categories(rng: np.random.Generator, n_items: int, n_categories: int) -> np.ndarray:
    """Gives every item a primary category; every category gets at least one item."""
    sizes = rng.dirichlet(np.full(n_categories, 8.0))
    category = rng.choice(n_categories, size=n_items, p=sizes)
    category[:n_categories] = rng.permutation(n_categories)[: min(n_items, n_categories)]
    return category


def _zipf_popularity(
    rng: np.random.Generator, category: np.ndarray, n_categories: int
) -> np.ndarray:
    """Zipf-like popularity by a random rank within each category."""
    popularity = np.zeros(len(category))
    for c in range(n_categories):
        members = np.flatnonzero(category == c)
        ranks = rng.permutation(len(members))
        popularity[members] = 1.0 / (ranks + 1.0) ** _ZIPF_EXPONENT
    return popularity


def _added_times(rng: np.random.Generator, cfg: SampleDataConfig) -> np.ndarray:
    """`added_at` of each item: before the log start, or late in the log for cold items."""
    span = cfg.days * _DAY
    added = LOG_START - rng.integers(0, _WARM_MAX_AGE_DAYS * _DAY, size=cfg.n_items)
    n_cold = min(round(cfg.cold_item_fraction * cfg.n_items), cfg.n_items - 1)
    if n_cold > 0:
        cold = rng.choice(cfg.n_items, size=n_cold, replace=False)
        low, high = (int(span * share) for share in _COLD_WINDOW)
        added[cold] = LOG_START + rng.integers(low, high, size=n_cold)
    return added.astype(np.int64)


def _build_catalog(cfg: SampleDataConfig, rng: np.random.Generator) -> tuple[list[dict], _Catalog]:
    """Draws the item records and the catalog's latent structure."""
    n_categories = min(cfg.n_categories, len(_CATEGORIES))
    categories = _CATEGORIES[:n_categories]
    category = _assign_categories(rng, cfg.n_items, n_categories)
    style = rng.integers(0, _N_STYLES, size=cfg.n_items)
    popularity = _zipf_popularity(rng, category, n_categories)
    added_at = _added_times(rng, cfg)
    width = _id_width(cfg.n_items, 5)
    items = []
    for i in range(cfg.n_items):
        second = None
        if n_categories > 1 and rng.random() < _SECOND_CATEGORY_P:
            offset = 1 + int(rng.integers(n_categories - 1))
            second = categories[(int(category[i]) + offset) % n_categories].name
        items.append(
            _item_record(
                rng,
                f"i{i:0{width}d}",
                categories[int(category[i])],
                int(style[i]),
                second,
                int(added_at[i]),
            )
        )
    warm_items = np.flatnonzero(added_at <= LOG_START)
    catalog = _Catalog(
        category=category,
        style=style,
        popularity=popularity,
        added_at=added_at,
        members=tuple(np.flatnonzero(category == c) for c in range(n_categories)),
        category_popularity=rng.dirichlet(np.full(n_categories, 2.0)),
        warm_cumulative=np.cumsum(popularity[warm_items]),
        warm_items=warm_items,
    )
    return items, catalog


def _draw_taste(rng: np.random.Generator, catalog: _Catalog) -> _Taste:
    """Draws a user's preferred categories, their weights and per-category style affinity."""
    n_categories = len(catalog.members)
    n_preferred = min(n_categories, 1 + int(rng.choice(3, p=_PREFERRED_COUNT_P)))
    preferred = rng.choice(
        n_categories, size=n_preferred, replace=False, p=catalog.category_popularity
    )
    weights = rng.dirichlet(np.full(n_preferred, 1.5))
    item_weights = {}
    for c in preferred:
        members = catalog.members[int(c)]
        affinity = rng.dirichlet(np.full(_N_STYLES, _STYLE_CONCENTRATION))
        scale = affinity[catalog.style[members]] + _STYLE_FLOOR
        item_weights[int(c)] = catalog.popularity[members] * scale
    return _Taste(categories=preferred, weights=weights, item_weights=item_weights)


def _draw_category(rng: np.random.Generator, taste: _Taste, n_categories: int) -> int:
    """A category from the user's preferences, or any category when exploring."""
    if rng.random() < _EXPLORE_SESSION_P:
        return int(rng.integers(n_categories))
    return int(taste.categories[int(rng.choice(len(taste.weights), p=taste.weights))])


def _draw_item(
    rng: np.random.Generator, catalog: _Catalog, taste: _Taste, category: int, t: int
) -> int:
    """An item of `category` available at time `t`, by popularity times style affinity."""
    members = catalog.members[category]
    weights = taste.item_weights.get(category)
    if weights is None:
        weights = catalog.popularity[members]
    weights = weights * (catalog.added_at[members] <= t)
    cumulative = np.cumsum(weights)
    if len(cumulative) == 0 or cumulative[-1] <= 0:
        members, cumulative = catalog.warm_items, catalog.warm_cumulative
    k = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(members[min(k, len(members) - 1)])


def _session(
    rng: np.random.Generator, catalog: _Catalog, taste: _Taste, start: int, end: int
) -> list[tuple[int, int, int]]:
    """One session: `(timestamp, item, event type index)` events, minutes apart."""
    n_categories = len(catalog.members)
    n_events = 2 + min(_MAX_SESSION_EVENTS - 2, int(rng.poisson(_EXTRA_EVENTS_MEAN)))
    intent = _draw_category(rng, taste, n_categories)
    events: list[tuple[int, int, int]] = []
    focus: list[int] = []  # [item, stage] of the item most recently engaged with.
    t = start
    for k in range(n_events):
        if k:
            gap = _GAP_MIN_S + int(rng.exponential(_GAP_MEAN_S))
            t += min(gap, _GAP_MAX_S)
        if t >= end:
            break
        if (
            focus
            and focus[1] < len(EVENT_TYPES) - 1
            and rng.random() >= _NEW_VIEW_P
            and rng.random() < _ADVANCE_P[focus[1] + 1]
        ):
            focus[1] += 1  # Engage further with the same item.
            events.append((t, focus[0], focus[1]))
            continue
        category = intent
        if rng.random() < _OFF_INTENT_P:
            category = _draw_category(rng, taste, n_categories)
        focus = [_draw_item(rng, catalog, taste, category, t), 0]
        events.append((t, focus[0], 0))
    return events


def _user_events(
    rng: np.random.Generator, cfg: SampleDataConfig, catalog: _Catalog
) -> list[tuple[int, int, int]]:
    """All events of one user: Poisson-many sessions at random, non-overlapping times."""
    taste = _draw_taste(rng, catalog)
    span = cfg.days * _DAY
    n_sessions = max(1, int(rng.poisson(cfg.sessions_per_user)))
    starts = np.sort(rng.integers(0, span - _SESSION_ROOM_S, size=n_sessions))
    events: list[tuple[int, int, int]] = []
    free_from = 0
    for offset in starts:
        start = LOG_START + max(int(offset), free_from)
        session = _session(rng, catalog, taste, start, LOG_START + span)
        if session:
            events.extend(session)
            free_from = session[-1][0] - LOG_START + _SESSION_PAUSE_S
    return events


def generate(cfg: SampleDataConfig, progress: ProgressFn | None = None) -> SampleData:
    """Generates the synthetic marketplace in memory.

    Deterministic: the same config gives the same records, in the same order.

    Args:
      cfg: Sizes, time span, cold-start share and seed.
      progress: Optional `progress(done, total)` callback, called now and then while users'
        events are generated (`total` is the number of users).

    Returns:
      The item catalog and the event log.
    """
    rng = np.random.default_rng(cfg.seed)
    items, catalog = _build_catalog(cfg, rng)
    width = _id_width(cfg.n_users, 4)
    step = max(1, cfg.n_users // 100)
    rows: list[tuple[int, int, int, int]] = []
    for u in range(cfg.n_users):
        rows.extend((t, u, item, kind) for t, item, kind in _user_events(rng, cfg, catalog))
        if progress is not None and ((u + 1) % step == 0 or u + 1 == cfg.n_users):
            progress(u + 1, cfg.n_users)
    rows.sort(key=lambda row: (row[0], row[1]))
    events = [
        {
            "user_id": f"u{u:0{width}d}",
            "item_id": items[item]["item_id"],
            "timestamp": t,
            "event_type": EVENT_TYPES[kind],
        }
        for t, u, item, kind in rows
    ]
    return SampleData(items=items, events=events)


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(tmp)` on a temporary file beside `path`, then renames it over `path`."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_jsonl(records: list[dict], fields: Sequence[str], path: str) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept as is."""
    with open(path, "x", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps({k: record[k] for k in fields}, ensure_ascii=False))
            f.write("\n")


def _write_csv(records: list[dict], fields: Sequence[str], path: str) -> None:
    """A header row, then one row per record; list values joined with `|`."""
    with open(path, "x", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for record in records:
            writer.writerow(
                _CATEGORY_DELIMITER.join(v) if isinstance(v, list) else v
                for v in (record[k] for k in fields)
            )


def _write_parquet(records: list[dict], fields: Sequence[str], path: str) -> None:
    """A Parquet file with an explicit schema (categories as `list<string>`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "categories": pa.list_(pa.string()),
        "added_at": pa.int64(),
        "timestamp": pa.int64(),
    }
    schema = pa.schema([(k, types.get(k, pa.string())) for k in fields])
    columns = {k: [record[k] for record in records] for k in fields}
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


_WRITERS = {"jsonl": _write_jsonl, "csv": _write_csv, "parquet": _write_parquet}


def write_sample_data(data: SampleData, out_dir: str, fmt: str = "jsonl") -> dict:
    """Writes `events.<fmt>` and `items.<fmt>` into `out_dir`, each atomically.

    Args:
      data: What `generate` returned.
      out_dir: Destination folder; created when missing. Existing files are replaced.
      fmt: `jsonl`, `csv` or `parquet`.

    Returns:
      `{"events": path, "items": path, "n_events": int, "n_items": int, "n_users": int}`.

    Raises:
      ValueError: `fmt` is not a supported format.
    """
    if fmt not in _WRITERS:
        raise ValueError(f"unknown sample data format {fmt!r}; expected one of {FORMATS}")
    os.makedirs(out_dir, exist_ok=True)
    writer = _WRITERS[fmt]
    paths = {}
    for kind, records, fields in (
        ("events", data.events, _EVENT_FIELDS),
        ("items", data.items, _ITEM_FIELDS),
    ):
        paths[kind] = os.path.join(out_dir, f"{kind}.{fmt}")
        _atomic_write(paths[kind], lambda tmp, r=records, f=fields: writer(r, f, tmp))
    return {
        "events": paths["events"],
        "items": paths["items"],
        "n_events": len(data.events),
        "n_items": len(data.items),
        "n_users": len({e["user_id"] for e in data.events}),
    }
