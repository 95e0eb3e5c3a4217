"""The 1000 ImageNet-1k classes in BigGAN's class order, and lookup by name.

Each entry of :data:`IMAGENET_CLASSES` is one class's names joined by ``|``: first the
short name torchvision uses (``torchvision.models._meta._IMAGENET_CATEGORIES``), then,
where it differs, the clearer name OpenAI chose for CLIP zero-shot prompts (as shipped
in ``open_clip.zero_shot_metadata``), e.g. ``"cock|rooster"``. The list is kept here as
data rather than imported, so a lookup needs neither package and cannot shift if they
change. :func:`find_class` accepts any of a class's names, exactly (case, spaces,
hyphens and underscores aside) or with a small typo, or the class index itself.
"""

from __future__ import annotations

import difflib
import functools
import re

from clipgen.errors import SettingsError

#: How close (difflib ratio) a misspelt name must be to be taken without asking.
FUZZY_ACCEPT = 0.88
#: How close a name must be to be offered as a suggestion.
FUZZY_SUGGEST = 0.6

# fmt: off
IMAGENET_CLASSES: tuple[str, ...] = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead|hammerhead shark", "electric ray", "stingray",
    "cock|rooster", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco", "indigo bunting",
    "robin|American robin", "bulbul", "jay", "magpie", "chickadee", "water ouzel|American dipper",
    "kite|kite (bird of prey)", "bald eagle", "vulture", "great grey owl", "European fire salamander|fire salamander",
    "common newt|smooth newt", "eft|newt", "spotted salamander", "axolotl", "bullfrog|American bullfrog", "tree frog",
    "tailed frog", "loggerhead|loggerhead sea turtle", "leatherback turtle|leatherback sea turtle", "mud turtle",
    "terrapin", "box turtle", "banded gecko", "common iguana|green iguana", "American chameleon|Carolina anole",
    "whiptail|desert grassland whiptail lizard", "agama", "frilled lizard|frilled-necked lizard", "alligator lizard",
    "Gila monster", "green lizard|European green lizard", "African chameleon|chameleon", "Komodo dragon",
    "African crocodile|Nile crocodile", "American alligator", "triceratops", "thunder snake|worm snake",
    "ringneck snake|ring-necked snake", "hognose snake|eastern hog-nosed snake", "green snake|smooth green snake",
    "king snake|kingsnake", "garter snake", "water snake", "vine snake", "night snake", "boa constrictor",
    "rock python|African rock python", "Indian cobra", "green mamba", "sea snake", "horned viper|Saharan horned viper",
    "diamondback|eastern diamondback rattlesnake", "sidewinder|sidewinder rattlesnake", "trilobite", "harvestman",
    "scorpion", "black and gold garden spider|yellow garden spider", "barn spider",
    "garden spider|European garden spider", "black widow|southern black widow", "tarantula", "wolf spider", "tick",
    "centipede", "black grouse", "ptarmigan", "ruffed grouse", "prairie chicken|prairie grouse", "peacock|peafowl",
    "quail", "partridge", "African grey|african grey parrot", "macaw", "sulphur-crested cockatoo", "lorikeet",
    "coucal", "bee eater", "hornbill", "hummingbird", "jacamar", "toucan", "drake|duck", "red-breasted merganser",
    "goose", "black swan", "tusker", "echidna", "platypus", "wallaby", "koala", "wombat", "jellyfish", "sea anemone",
    "brain coral", "flatworm", "nematode", "conch", "snail", "slug", "sea slug", "chiton", "chambered nautilus",
    "Dungeness crab", "rock crab", "fiddler crab", "king crab|red king crab", "American lobster", "spiny lobster",
    "crayfish", "hermit crab", "isopod", "white stork", "black stork", "spoonbill", "flamingo", "little blue heron",
    "American egret|great egret", "bittern|bittern bird", "crane bird", "limpkin",
    "European gallinule|common gallinule", "American coot", "bustard", "ruddy turnstone",
    "red-backed sandpiper|dunlin", "redshank|common redshank", "dowitcher", "oystercatcher", "pelican", "king penguin",
    "albatross", "grey whale", "killer whale", "dugong", "sea lion", "Chihuahua", "Japanese spaniel|Japanese Chin",
    "Maltese dog|Maltese", "Pekinese|Pekingese", "Shih-Tzu|Shih Tzu", "Blenheim spaniel|King Charles Spaniel",
    "papillon", "toy terrier", "Rhodesian ridgeback", "Afghan hound", "basset|Basset Hound", "beagle", "bloodhound",
    "bluetick|Bluetick Coonhound", "black-and-tan coonhound|Black and Tan Coonhound",
    "Walker hound|Treeing Walker Coonhound", "English foxhound", "redbone|Redbone Coonhound", "borzoi",
    "Irish wolfhound", "Italian greyhound", "whippet", "Ibizan hound", "Norwegian elkhound", "otterhound", "Saluki",
    "Scottish deerhound", "Weimaraner", "Staffordshire bullterrier|Staffordshire Bull Terrier",
    "American Staffordshire terrier", "Bedlington terrier", "Border terrier", "Kerry blue terrier", "Irish terrier",
    "Norfolk terrier", "Norwich terrier", "Yorkshire terrier", "wire-haired fox terrier|Wire Fox Terrier",
    "Lakeland terrier", "Sealyham terrier", "Airedale|Airedale Terrier", "cairn|Cairn Terrier", "Australian terrier",
    "Dandie Dinmont|Dandie Dinmont Terrier", "Boston bull|Boston Terrier", "miniature schnauzer", "giant schnauzer",
    "standard schnauzer", "Scotch terrier|Scottish Terrier", "Tibetan terrier",
    "silky terrier|Australian Silky Terrier", "soft-coated wheaten terrier", "West Highland white terrier",
    "Lhasa|Lhasa Apso", "flat-coated retriever", "curly-coated retriever", "golden retriever", "Labrador retriever",
    "Chesapeake Bay retriever", "German short-haired pointer|German Shorthaired Pointer", "vizsla", "English setter",
    "Irish setter", "Gordon setter", "Brittany spaniel|Brittany dog", "clumber|Clumber Spaniel",
    "English springer|English Springer Spaniel", "Welsh springer spaniel", "cocker spaniel", "Sussex spaniel",
    "Irish water spaniel", "kuvasz", "schipperke", "groenendael|Groenendael dog", "malinois", "briard",
    "kelpie|Australian Kelpie", "komondor", "Old English sheepdog", "Shetland sheepdog", "collie", "Border collie",
    "Bouvier des Flandres|Bouvier des Flandres dog", "Rottweiler", "German shepherd|German Shepherd Dog",
    "Doberman|Dobermann", "miniature pinscher", "Greater Swiss Mountain dog", "Bernese mountain dog",
    "Appenzeller|Appenzeller Sennenhund", "EntleBucher|Entlebucher Sennenhund", "boxer", "bull mastiff|Bullmastiff",
    "Tibetan mastiff", "French bulldog", "Great Dane", "Saint Bernard|St. Bernard", "Eskimo dog|husky",
    "malamute|Alaskan Malamute", "Siberian husky", "dalmatian", "affenpinscher", "basenji", "pug",
    "Leonberg|Leonberger", "Newfoundland|Newfoundland dog", "Great Pyrenees|Great Pyrenees dog", "Samoyed",
    "Pomeranian", "chow|Chow Chow", "keeshond", "Brabancon griffon|brussels griffon", "Pembroke|Pembroke Welsh Corgi",
    "Cardigan|Cardigan Welsh Corgi", "toy poodle", "miniature poodle", "standard poodle",
    "Mexican hairless|Mexican hairless dog (xoloitzcuintli)", "timber wolf|grey wolf",
    "white wolf|Alaskan tundra wolf", "red wolf|red wolf or maned wolf", "coyote", "dingo", "dhole",
    "African hunting dog|African wild dog", "hyena", "red fox", "kit fox", "Arctic fox", "grey fox", "tabby|tabby cat",
    "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat|Egyptian Mau", "cougar", "lynx", "leopard",
    "snow leopard", "jaguar", "lion", "tiger", "cheetah", "brown bear", "American black bear", "ice bear|polar bear",
    "sloth bear", "mongoose", "meerkat", "tiger beetle", "ladybug", "ground beetle",
    "long-horned beetle|longhorn beetle", "leaf beetle", "dung beetle", "rhinoceros beetle", "weevil", "fly", "bee",
    "ant", "grasshopper", "cricket|cricket insect", "walking stick|stick insect", "cockroach", "mantis|praying mantis",
    "cicada", "leafhopper", "lacewing", "dragonfly", "damselfly", "admiral|red admiral butterfly",
    "ringlet|ringlet butterfly", "monarch|monarch butterfly", "cabbage butterfly|small white butterfly",
    "sulphur butterfly", "lycaenid|gossamer-winged butterfly", "starfish", "sea urchin", "sea cucumber",
    "wood rabbit|cottontail rabbit", "hare", "Angora|Angora rabbit", "hamster", "porcupine", "fox squirrel", "marmot",
    "beaver", "guinea pig", "sorrel|common sorrel horse", "zebra", "hog|pig", "wild boar", "warthog", "hippopotamus",
    "ox", "water buffalo", "bison", "ram|ram (adult male sheep)", "bighorn|bighorn sheep", "ibex|Alpine ibex",
    "hartebeest", "impala|impala (antelope)", "gazelle", "Arabian camel", "llama", "weasel", "mink",
    "polecat|European polecat", "black-footed ferret", "otter", "skunk", "badger", "armadillo", "three-toed sloth",
    "orangutan", "gorilla", "chimpanzee", "gibbon", "siamang", "guenon", "patas|patas monkey", "baboon", "macaque",
    "langur", "colobus|black-and-white colobus", "proboscis monkey", "marmoset", "capuchin|white-headed capuchin",
    "howler monkey", "titi|titi monkey", "spider monkey|Geoffroy's spider monkey",
    "squirrel monkey|common squirrel monkey", "Madagascar cat|ring-tailed lemur", "indri",
    "Indian elephant|Asian elephant", "African elephant|African bush elephant", "lesser panda|red panda",
    "giant panda", "barracouta|snoek fish", "eel", "coho|silver salmon", "rock beauty|rock beauty fish",
    "anemone fish|clownfish", "sturgeon", "gar|gar fish", "lionfish", "puffer|pufferfish", "abacus", "abaya",
    "academic gown", "accordion", "acoustic guitar", "aircraft carrier", "airliner", "airship", "altar", "ambulance",
    "amphibian|amphibious vehicle", "analog clock", "apiary", "apron", "ashcan|trash can", "assault rifle", "backpack",
    "bakery", "balance beam", "balloon", "ballpoint|ballpoint pen", "Band Aid|Band-Aid", "banjo",
    "bannister|baluster / handrail", "barbell", "barber chair", "barbershop", "barn", "barometer", "barrel",
    "barrow|wheelbarrow", "baseball", "basketball", "bassinet", "bassoon", "bathing cap|swimming cap", "bath towel",
    "bathtub", "beach wagon|station wagon", "beacon|lighthouse", "beaker", "bearskin|military hat (bearskin or shako)",
    "beer bottle", "beer glass", "bell cote|bell tower", "bib|baby bib", "bicycle-built-for-two|tandem bicycle",
    "bikini", "binder|ring binder", "binoculars", "birdhouse", "boathouse", "bobsled|bobsleigh", "bolo tie",
    "bonnet|poke bonnet", "bookcase", "bookshop|bookstore", "bottlecap|bottle cap", "bow|hunting bow", "bow tie",
    "brass|brass memorial plaque", "brassiere|bra", "breakwater", "breastplate", "broom", "bucket", "buckle",
    "bulletproof vest", "bullet train|high-speed train", "butcher shop", "cab|taxicab", "caldron|cauldron", "candle",
    "cannon", "canoe", "can opener", "cardigan", "car mirror", "carousel", "carpenter's kit|tool kit",
    "carton|cardboard box / carton", "car wheel", "cash machine|automated teller machine", "cassette",
    "cassette player", "castle", "catamaran", "CD player", "cello", "cellular telephone|mobile phone", "chain",
    "chainlink fence|chain-link fence", "chain mail", "chain saw|chainsaw", "chest|storage chest", "chiffonier",
    "chime|bell or wind chime", "china cabinet", "Christmas stocking", "church", "cinema|movie theater", "cleaver",
    "cliff dwelling", "cloak", "clog|clogs", "cocktail shaker", "coffee mug", "coffeepot|coffeemaker",
    "coil|spiral or coil", "combination lock", "computer keyboard", "confectionery|candy store", "container ship",
    "convertible", "corkscrew", "cornet", "cowboy boot", "cowboy hat", "cradle", "crane|construction crane",
    "crash helmet", "crate", "crib|infant bed", "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk",
    "desktop computer", "dial telephone|rotary dial telephone", "diaper", "digital clock", "digital watch",
    "dining table", "dishrag|dishcloth", "dishwasher", "disk brake|disc brake", "dock", "dogsled|dog sled", "dome",
    "doormat", "drilling platform|drilling rig", "drum", "drumstick", "dumbbell", "Dutch oven", "electric fan",
    "electric guitar", "electric locomotive", "entertainment center", "envelope", "espresso maker|espresso machine",
    "face powder", "feather boa", "file|filing cabinet", "fireboat", "fire engine|fire truck", "fire screen",
    "flagpole", "flute", "folding chair", "football helmet", "forklift", "fountain", "fountain pen",
    "four-poster|four-poster bed", "freight car", "French horn", "frying pan", "fur coat", "garbage truck",
    "gasmask|gas mask or respirator", "gas pump", "goblet", "go-kart", "golf ball", "golfcart|golf cart", "gondola",
    "gong", "gown", "grand piano", "greenhouse", "grille|radiator grille", "grocery store", "guillotine",
    "hair slide|hair clip", "hair spray", "half track|half-track", "hammer", "hamper", "hand blower|hair dryer",
    "hand-held computer", "handkerchief", "hard disc|hard disk drive", "harmonica", "harp",
    "harvester|combine harvester", "hatchet", "holster", "home theater", "honeycomb", "hook", "hoopskirt|hoop skirt",
    "horizontal bar|gymnastic horizontal bar", "horse cart|horse-drawn vehicle", "hourglass", "iPod",
    "iron|clothes iron", "jack-o'-lantern|carved pumpkin", "jean|jeans", "jeep", "jersey|T-shirt", "jigsaw puzzle",
    "jinrikisha|rickshaw", "joystick", "kimono", "knee pad", "knot", "lab coat", "ladle", "lampshade",
    "laptop|laptop computer", "lawn mower", "lens cap", "letter opener", "library", "lifeboat", "lighter", "limousine",
    "liner|ocean liner", "lipstick", "Loafer|slip-on shoe", "lotion", "loudspeaker|music speaker",
    "loupe|loupe magnifying glass", "lumbermill|sawmill", "magnetic compass", "mailbag|messenger bag", "mailbox",
    "maillot|tights", "maillot tank suit|one-piece bathing suit", "manhole cover", "maraca", "marimba", "mask",
    "matchstick", "maypole", "maze", "measuring cup", "medicine chest|medicine cabinet", "megalith", "microphone",
    "microwave|microwave oven", "military uniform", "milk can", "minibus", "miniskirt", "minivan", "missile", "mitten",
    "mixing bowl", "mobile home", "Model T|ford model t", "modem", "monastery", "monitor", "moped",
    "mortar|mortar and pestle", "mortarboard|graduation cap", "mosque", "mosquito net", "motor scooter|vespa",
    "mountain bike", "mountain tent|tent", "mouse|computer mouse", "mousetrap", "moving van", "muzzle",
    "nail|metal nail", "neck brace", "necklace", "nipple|baby pacifier", "notebook|notebook computer", "obelisk",
    "oboe", "ocarina", "odometer", "oil filter", "organ|pipe organ", "oscilloscope", "overskirt",
    "oxcart|bullock cart", "oxygen mask", "packet|product packet / packaging", "paddle", "paddlewheel|paddle wheel",
    "padlock", "paintbrush", "pajama|pajamas", "palace", "panpipe|pan flute", "paper towel", "parachute",
    "parallel bars", "park bench", "parking meter", "passenger car|railroad car", "patio", "pay-phone|payphone",
    "pedestal", "pencil box|pencil case", "pencil sharpener", "perfume", "Petri dish", "photocopier", "pick|plectrum",
    "pickelhaube", "picket fence", "pickup|pickup truck", "pier", "piggy bank", "pill bottle", "pillow",
    "ping-pong ball", "pinwheel", "pirate|pirate ship", "pitcher|drink pitcher", "plane|block plane", "planetarium",
    "plastic bag", "plate rack", "plow|farm plow", "plunger", "Polaroid camera", "pole", "police van", "poncho",
    "pool table", "pop bottle|soda bottle", "pot|plant pot", "potter's wheel", "power drill", "prayer rug", "printer",
    "prison", "projectile|missile", "projector", "puck|hockey puck", "punching bag", "purse", "quill", "quilt",
    "racer|race car", "racket", "radiator", "radio", "radio telescope", "rain barrel", "recreational vehicle",
    "reel|fishing casting reel", "reflex camera", "refrigerator", "remote control", "restaurant", "revolver", "rifle",
    "rocking chair", "rotisserie", "rubber eraser|eraser", "rugby ball", "rule|ruler measuring stick",
    "running shoe|sneaker", "safe", "safety pin", "saltshaker|salt shaker", "sandal", "sarong", "sax|saxophone",
    "scabbard", "scale|weighing scale", "school bus", "schooner", "scoreboard", "screen|CRT monitor", "screw",
    "screwdriver", "seat belt", "sewing machine", "shield", "shoe shop|shoe store",
    "shoji|shoji screen / room divider", "shopping basket", "shopping cart", "shovel", "shower cap", "shower curtain",
    "ski", "ski mask|balaclava ski mask", "sleeping bag", "slide rule", "sliding door", "slot|slot machine", "snorkel",
    "snowmobile", "snowplow", "soap dispenser", "soccer ball", "sock", "solar dish|solar thermal collector",
    "sombrero", "soup bowl", "space bar|keyboard space bar", "space heater", "space shuttle", "spatula",
    "speedboat|motorboat", "spider web", "spindle", "sports car", "spotlight", "stage", "steam locomotive",
    "steel arch bridge|through arch bridge", "steel drum", "stethoscope", "stole|scarf", "stone wall", "stopwatch",
    "stove", "strainer", "streetcar|tram", "stretcher", "studio couch|couch", "stupa", "submarine", "suit", "sundial",
    "sunglass|sunglasses", "sunglasses", "sunscreen", "suspension bridge", "swab|mop", "sweatshirt",
    "swimming trunks|swim trunks / shorts", "swing", "switch|electrical switch", "syringe", "table lamp", "tank",
    "tape player", "teapot", "teddy|teddy bear", "television", "tennis ball", "thatch|thatched roof",
    "theater curtain|front curtain", "thimble", "thresher|threshing machine", "throne", "tile roof", "toaster",
    "tobacco shop", "toilet seat", "torch", "totem pole", "tow truck", "toyshop|toy store", "tractor",
    "trailer truck|semi-trailer truck", "tray", "trench coat", "tricycle", "trimaran", "tripod", "triumphal arch",
    "trolleybus", "trombone", "tub|hot tub", "turnstile", "typewriter keyboard", "umbrella", "unicycle",
    "upright|upright piano", "vacuum|vacuum cleaner", "vase", "vault|vaulted or arched ceiling",
    "velvet|velvet fabric", "vending machine", "vestment", "viaduct", "violin", "volleyball", "waffle iron",
    "wall clock", "wallet", "wardrobe", "warplane|military aircraft", "washbasin|sink", "washer|washing machine",
    "water bottle", "water jug", "water tower", "whiskey jug", "whistle", "wig|hair wig", "window screen",
    "window shade", "Windsor tie", "wine bottle", "wing|airplane wing", "wok", "wooden spoon", "wool",
    "worm fence|split-rail fence", "wreck|shipwreck", "yawl|sailboat", "yurt", "web site|website", "comic book",
    "crossword puzzle|crossword", "street sign|traffic or street sign", "traffic light", "book jacket|dust jacket",
    "menu", "plate", "guacamole", "consomme", "hot pot", "trifle", "ice cream", "ice lolly|popsicle",
    "French loaf|baguette", "bagel", "pretzel", "cheeseburger", "hotdog|hot dog", "mashed potato|mashed potatoes",
    "head cabbage|cabbage", "broccoli", "cauliflower", "zucchini", "spaghetti squash", "acorn squash",
    "butternut squash", "cucumber", "artichoke", "bell pepper", "cardoon", "mushroom",
    "Granny Smith|Granny Smith apple", "strawberry", "orange", "lemon", "fig", "pineapple", "banana", "jackfruit",
    "custard apple|cherimoya (custard apple)", "pomegranate", "hay", "carbonara", "chocolate sauce|chocolate syrup",
    "dough", "meat loaf|meatloaf", "pizza", "potpie|pot pie", "burrito", "red wine", "espresso", "cup|tea cup",
    "eggnog", "alp|mountain", "bubble", "cliff", "coral reef", "geyser", "lakeside|lakeshore", "promontory", "sandbar",
    "seashore|beach", "valley", "volcano", "ballplayer|baseball player", "groom|bridegroom", "scuba diver", "rapeseed",
    "daisy", "yellow lady's slipper", "corn", "acorn", "hip|rose hip", "buckeye|horse chestnut seed", "coral fungus",
    "agaric", "gyromitra", "stinkhorn|stinkhorn mushroom", "earthstar|earth star fungus",
    "hen-of-the-woods|hen of the woods mushroom", "bolete", "ear|corn cob", "toilet tissue|toilet paper",
)
# fmt: on


def class_names(index: int) -> tuple[str, ...]:
    """All names of class ``index`` (the first is the canonical one)."""
    return tuple(IMAGENET_CLASSES[index].split("|"))


def class_label(index: int) -> str:
    """The canonical name of class ``index``."""
    return class_names(index)[0]


def normalise(name: str) -> str:
    """Lower case, ``-``/``_`` as spaces, runs of spaces as one: how names are compared."""
    return re.sub(r"\s+", " ", re.sub(r"[-_]", " ", name.lower())).strip()


@functools.cache
def _index() -> dict[str, int]:
    """Normalised name -> class. Canonical names are entered first so they win a clash
    (OpenAI's list calls two classes "missile"; torchvision's "missile" is class 657)."""
    table: dict[str, int] = {}
    for position in (0, 1):
        for index in range(len(IMAGENET_CLASSES)):
            names = class_names(index)
            if position < len(names):
                table.setdefault(normalise(names[position]), index)
    return table


def find_class(name: str, setting: str = "class") -> int:
    """The index of the ImageNet class called ``name`` (or an index given as text).

    Exact names first; then a close misspelling (difflib ratio >= :data:`FUZZY_ACCEPT`)
    if it is clearly the closest; otherwise a :class:`SettingsError` listing the nearest
    names. ``setting`` names the option in that message.
    """
    key = normalise(name)
    if key.isdigit():
        index = int(key)
        if index < len(IMAGENET_CLASSES):
            return index
        raise SettingsError(f"{setting}: class index {index} is out of range; ImageNet classes are 0-999")
    table = _index()
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, table, n=5, cutoff=FUZZY_SUGGEST)
    if close and _ratio(key, close[0]) >= FUZZY_ACCEPT:
        runner_up = next((c for c in close[1:] if table[c] != table[close[0]]), None)
        if runner_up is None or _ratio(key, runner_up) < _ratio(key, close[0]):
            return table[close[0]]
    raise SettingsError(f"{setting}: no ImageNet class called {name!r}; {_suggest(key, close)}")


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _suggest(key: str, close: list[str]) -> str:
    """Up to six candidates: close spellings, then names containing the query's words."""
    table = _index()
    words = [w for w in key.split() if len(w) > 2]
    containing = [n for n in table if words and all(w in n for w in words)]
    seen: dict[int, str] = {}
    # Names holding every word of the query first: "retriever" means the retrievers.
    for candidate in [*sorted(containing, key=len), *close]:
        seen.setdefault(table[candidate], class_label(table[candidate]))
    if not seen:
        return "give a class name such as 'golden retriever' or an index 0-999"
    shown = ", ".join(f"{label!r} ({index})" for index, label in list(seen.items())[:6])
    return f"did you mean {shown}? (a name or an index 0-999)"
