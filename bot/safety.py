"""Deterministic safety layer: red-flag triage, scope guards, disclaimers and log redaction.

Nothing here calls a model or knows the clinic's topic: only generic health, safety and clinic-fact vocabulary, so
triage behaves the same whatever the articles say. Triage is a table of rules over small regexes, matched against a
normalised message, with negation ("no numbness"), time ("years ago", "checked and resolved") and "just asking"
("what are the red flags?") handled around every match.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

import re2

from bot.config import ClinicProfile
from bot.phrases import Phrases
from bot.types import Action, Passage
from bot.understanding import Understanding, conditions

Level = Literal["emergency", "crisis", "urgent"]



@dataclass(frozen=True)
class Triage:
    """A red flag found in a message: what kind, and how fast the patient needs care."""

    category: str
    level: Level


# --- normalisation ---------------------------------------------------------------------------------------------------
_NOT = re.compile(r"\b(can|do|does|did|is|are|was|were|have|has|had|could|would|should|will)\s+not\b")
_TYPOS = {"my self": "myself", "cnt": "cant", "dnt": "dont", "wana": "wanna", "nite": "night"}


def _norm(text: str) -> str:
    # Patients write "can't", "cant", "can not" and "cannot" alike: every rule sees "cant" (and "dont", "isnt", ...).
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[\u2018\u2019\u02bc`\u00b4]", "'", t).replace("cannot", "cant")
    t = _NOT.sub(lambda m: {"can": "cant", "will": "wont"}.get(m[1], m[1] + "nt"), t).replace("'", "")
    t = re.sub(r"\b(?:my self|cnt|dnt|wana|nite)\b", lambda m: _TYPOS[m[0]], t)
    t = re.sub(r"[^a-z0-9.,;!?\n]+", " ", t)  # hyphens, slashes, symbols -> space; clause punctuation stays
    return re.sub(r" +", " ", t).strip()


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts))


def _gap(n: int) -> str:
    # Up to n filler words that are not a negation, so "legs are not weak" never matches "legs ... weak".
    return rf"(?:(?!(?:no|not|never|dont|doesnt|didnt|isnt|arent|wasnt|werent|without)\b)\w+ ){{0,{n}}}"


def _near(a: str, b: str, n: int) -> str:
    return rf"\b(?:{a}) {_gap(n)}(?:{b})\b|\b(?:{b}) {_gap(n)}(?:{a})\b"


G1, G2, G3, G4 = _gap(1), _gap(2), _gap(3), _gap(4)
_CANT = r"(?:cant|couldnt|unable to|not able to|(?:havent|hasnt|not) been able to|can barely|can hardly)"

# --- symptom vocabulary (generic health words only) ------------------------------------------------------------------
_BACK = r"(?:back|spine|spinal|lumbar|tailbone|neck)"
BACK_PAIN = _rx(
    r"\bback ?aches?\b|\bsciatica\b|\bstiff neck\b|\bneck (?:is )?stiff",
    rf"\b{_BACK} {G2}(?:pain|pains|hurts?|hurting|aches?|aching|killing|agony|sore|spasms?|is bad|bothering)",
    rf"\b(?:pain|hurts?|hurting|aches?|aching|soreness|sore) {G2}(?:in|on|at|down|across|along) (?:my |the |his |her )?"
    rf"(?:lower |upper |mid |middle )?{_BACK}\b")
FEVER = _rx(r"(?<!hay )(?<!cabin )(?<!spring )\bfever(?:ish|s)?\b|\bfebrile\b|\b(?:high|running a|have a|"
            r"got a) temp\w*",
            r"\btemp(?:erature)? (?:of |is |was )?(?:10[0-5]|3[89])\b|\bchills\b(?! (?:down|up|through))|\brigors\b",
            r"\bnight sweats\b|\bshiver\w*|\bhot and cold\b")
_NUMB = (r"numb\w*|tingl\w*|pins and needles|an(?:a)?esthesia|no (?:feeling|sensation)|(?:lost|losing|loss of|reduced|"
         r"less|decreased) (?:the )?(?:ability to feel|feeling|sensation)|cant feel(?: anything| much| a thing| it)?|"
         r"dead")
_REGION = (r"saddle|groin|genital\w*|private (?:parts|area|region)|privates|down there|inner thighs?|crotch|perine\w*|"
           r"taint|vagin\w*|vulva|labia|penis|scrotum|testic\w*|anus|anal|rectum|rectal|back passage|(?:my|the|his|"
           r"her) bottom(?! of)|buttocks|(?:around|both sides of) (?:my |the )?(?:butt|bum|backside)|where i sit|"
           r"sit ?bones?|between (?:my|the|his|her) legs|pelvic floor|nether regions?")
# "my butt goes numb on hard chairs" is ordinary; "no feeling in my bum" is not.
SADDLE = _rx(_near(_NUMB, _REGION, 5), rf"\bthighs? {G3}(?:{_NUMB}) (?:on the )?inside",
             _near(r"no (?:feeling|sensation)|(?:lost|loss of) (?:feeling|sensation)|cant feel",
                   r"(?:my |the )?(?:bum|butt|buttocks?|backside)", 4))
BLADDER = _rx(
    rf"\b(?:{_CANT}|trouble|difficulty|problems?|hard time|struggl\w*(?: to)?|hard to|straining to) {G2}(?:pee|peeing|"
    r"urinat\w*|wee|start (?:my |the )?(?:stream|urine|urination|peeing)|empty\w* (?:my |the )?bladder|go pee)\b",
    r"\b(?:lost|losing|lose|loss of|no|dont have|cant|less|poor) (?:\w+ )?control(?: of| over| when i)? (?:my |his |"
    r"her |the )?(?:bladder|bowe?ls?|urine|pee|peeing|poop|stool)|\b(?:bladder|bowe?ls?) (?:just )?(?:let go|"
    r"gave (?:way|out)|emptied)|\b(?:bladder|bowe?ls?) (?:is |are )?(?:not|isnt|arent|wont|doesnt|dont) (?:working|"
    r"work|empty\w*)",
    r"\b(?:bladder|bowe?l) (?:\w+ )?(?:problems?|issues?|accidents?|leak\w*|incontinence|retention|changes?)\b"
    r"|\bincontinen\w*|\burinary retention\b",
    r"\b(?:wet|wetting|peed|pee|peeing|pissed|soiled|pooped|pooping|pooed|shit|shat|crapped|messed) (?:myself|himself|"
    r"herself|my (?:pants|self|underwear|bed)|the bed)\b|\b(?:pants|underwear) (?:are |is |were |was )?(?:wet|soaked|"
    r"soiled)\b|\b(?:peeing|urinating|urination|my (?:pee|urine|stream)) (?:is )?(?:\w+ )?(?:hard|difficult|slow) to "
    r"(?:start|get going)|\b(?:pee|urine) (?:wont|doesnt) (?:come|start)",
    rf"\b(?:leak\w*|dribbl\w*) {G2}(?:urine|pee|wee|stool|poop)\b|\burine (?:is )?leak\w*|\bcant hold (?:in )?(?:my |"
    r"it |the )?(?:urine|pee|bladder|bowe?ls?|poop|it in|my water)",
    rf"\b(?:cant|dont|unable to|no longer) (?:feel|tell) {_gap(5)}(?:pee|poop|wipe|wiping|urinat\w*|go to the "
    r"(?:bathroom|toilet)|need to go\b)")
# Leaking on a sneeze since childbirth is common and old; it is not the new loss of control that matters.
STRESS_LEAK = _rx(r"\bwhen (?:i |im )?(?:sneez|cough|laugh|jump)\w*|\bsince (?:having|giving birth|childbirth|pregnan)"
                  r"|\bafter (?:having )?(?:kids|babies|children|childbirth|giving birth)")
_LEG = r"(?:legs?|foot|feet)"
WEAK_HARD = _rx(
    rf"\b{_LEG} {G2}(?:gave|gives?|giving|keeps? giving|buckl\w*|collaps\w*)(?: way| out| under| on me)?\b"
    r"|\b(?:foot ?drop|drop ?foot)\b",
    rf"\b(?:{_CANT}|trouble|difficulty|struggl\w* to) (?:lift|raise|move|flex|pull up|point|bend) (?:up )?(?:my |his |"
    r"her |the |either |both |one )?(?:foot|feet|toes?|legs?|ankle)",
    rf"\b(?:dragging|drag) (?:my |his |her |one |the )?(?:foot|feet|leg|toes)|\b{_LEG} (?:is |keeps )?(?:dragging|"
    r"slapping|flop\w*|drops|dropping)|\bcant (?:feel|move|use) (?:my |his |her |both |either )?(?:legs|feet|"
    r"lower body)\b",
    rf"\b{_LEG} {G2}(?:wont|doesnt|cant|will not) (?:lift|raise|move|work|hold me)\b|"
    r"\b(?:im|am|is|are|feel|felt|be|been|got|went) paraly[sz]\w*|\bparaly[sz]ed (?:from|below)")
WEAK_SOFT = _rx(
    rf"\b(?:weak\w*|no strength|losing strength|lost strength) {G3}(?:in )?(?:my |his |her |both |one |either |the )?"
    r"(?:legs?|foot|feet|ankles?)\b",
    rf"\b{_LEG} {_gap(5)}(?:weak\w*|wont hold (?:me|my weight)|not working|arent working|isnt working|dont work"
    r"|doesnt work"
    r"|wont work|wont move|like jelly)")
EXERTION = _rx(rf"\b(?:after|from|during|post) {G2}(?:hik\w*|run\w*|workout|work out|gym|exercis\w*|leg day|squats?|"
               r"lifting|climb\w*|walk\w*|bik\w*|cycling|class|yoga|training|marathon|race|session|massage|stretch\w*)"
               r"|\b(?:when|while) i (?:hike|run|climb|exercise|work out|walk)")
_MAJOR = (r"(?:car|auto|motorcycle|motorbike|bike|bicycle|vehicle|traffic|head on|ski|skiing) (?:crash|accident|wreck|"
          r"collision)|\bcrash(?:ed)? (?:my |his |her |the |a |into|on (?:my|his|her|a) )|\bwreck(?:ed)?\b|rear ended|"
          r"hit by (?:a )?(?:car|truck|bus|vehicle|van)|fell (?:off|from|out of) (?:a |the |my |our |his |"
          r"her )?(?:ladder|roof|horse|bike|tree|balcony|deck|height|scaffold\w*|truck|stage|wall|cliff)|"
          r"fell down (?:the |a |some |\w+ )?(?:stairs|steps|flight)|fall from (?:a )?height|thrown (?:from|off)")
MAJOR = _rx(_MAJOR)
FALL = _rx(_MAJOR, r"\bfell\b(?! (?:in love|asleep|for|behind|apart|short|through|out with))|\bfallen\b(?! (?:asleep|"
           r"in love|behind))|\bfalling (?:down|over|off)\b|\b(?:tripped|stumbled)\b|\bslipped\b(?! dis[ck])",
           r"\b(?:had|took|have had|taken) (?:a |an )?(?:\w+ )?(?:fall|tumble|spill)\b|\b(?:bad|hard|nasty|big|"
           r"serious) fall\b|\b(?:after|since|from) (?:the|my|a|that|his|her) (?:\w+ )?fall\b")
SEVERE = _rx(
    r"\b(?:severe|excruciating|unbearable|intense|extreme|terrible|horrible|awful|worst|agoniz\w*|crippling|"
    rf"debilitating|really bad|so much|screaming|blinding) {G2}(?:pain|hurts?|hurting|ache)|\bheard (?:a |"
    r"something )?(?:crack|snap|pop)|\bpain (?:in (?:my|his|her|the) \w+ )?is (?:severe|unbearable|excruciating|"
    r"intense|"
    r"terrible|horrible|awful|really bad|so bad)",
    r"\b10 (?:out of )?10\b|\b(?:hurts?|hurting) (?:so bad|like hell|too much|so much|really bad|terribly|horribly|"
    r"like crazy)|\bin agony\b|\bkilling me\b|\bcant stand the pain")
CANT_BEAR = _rx(
    rf"\b(?:{_CANT}|wont let me|too painful to|hurts too much to) (?:even )?(?:stand(?! (?:this|the|it|that|him|her|"
    r"them|being|how|when|people|my (?:job|boss)))|walk|get up|bear (?:any )?weight|put (?:any )?weight|move (?:my |"
    r"his |her |the )?(?:leg|hip|legs)|lift (?:my |his |her |the )?leg|get off the (?:floor|ground)|sit up)",
    rf"\b(?:leg|foot) {G3}(?:shorter|turned out\w*|turn(?:ed|ing|s)? (?:out|outwards?|sideways)|rotated|twisted (?:out|"
    r"outward|to the side)|pointing (?:out|outwards?|sideways|the wrong way)|at a (?:weird|strange|funny|odd) angle|"
    r"looks (?:wrong|deformed))|\bbone (?:is )?(?:sticking|poking) out|\b(?:lying|stuck|still) on the (?:floor|ground)")
BROKEN = _rx(r"\b(?:broke|broken|fractured|cracked|shattered) (?:my |his |her |a |the )?(?:\w+ )?(?:hip|leg|pelvis|"
             r"femur|back|spine|neck|vertebra\w*|tailbone)\b|\b(?:hip|leg|pelvis|femur|spine|neck) (?:is |might be |"
             r"could be |may be |looks )?(?:broken|fractured)\b")
OSTEO = _rx(r"\bosteopor\w*|\bosteopen\w*|brittle bones|thin(?:ning)? bones|low bone density|steroid use|(?:long term|"
            r"years of|been on|taking|take|on|high dose) (?:\w+ ){0,2}(?:steroids|prednis\w*|cortico\w*|dexamethasone)")
MINOR = _rx(FALL.pattern, r"\b(?:bump\w*|sneez\w*|cough\w*|lift\w*|bent over|bending|twist\w*|reach\w*)\b")
HEAD_HIT = _rx(r"\b(?:hit|banged|bumped|smacked|struck|cracked) (?:my|his|her|their|the back of (?:my|his|her)) head\b"
               r"|\bhead (?:injury|trauma)|\bconcussion|\bknocked (?:out|unconscious)")
HEAD_FLAG = _rx(r"\bconfus\w*|\b(?:not|isnt|arent|wasnt) making (?:any )?sense|\bmaking no sense|\bdisorient\w*|"
                r"\bvomit\w*|\bthrowing up|\bknocked out|\bdrowsy|\bcant remember|\bslurr\w*|\bseizure|"
                r"\bblood thinners?")
IVDU = _rx(r"\b(?:iv|intravenous) drugs?\b|\biv drug use|\binject(?:ing|ed)? (?:drugs|heroin|meth|fentanyl|opioids)|"
           r"\bshoot(?:ing)? up\b|\bheroin\b|\b(?:use|using|used|share|sharing) needles\b|\bimmuno(?:compromised|"
           r"suppress\w*)|weak(?:ened)? immune system|\b(?:organ|kidney|liver|heart|lung) transplant")
_JOINT = r"(?:hip|knee|joint|ankle|shoulder|elbow|wrist|toe)s?"
HOT_JOINT = _rx(_near(_JOINT, r"hot|red|swollen|warm|inflamed|puffy", 4))
JOINT_HOT = _rx(_near(_JOINT, r"hot|warm|red", 4))
JOINT_SWOLLEN = _rx(_near(_JOINT, r"swollen|puffy|inflamed|swelling", 4))
CANCER = _rx(r"\b(?:cancer|tumou?rs?|metasta\w*|lymphoma|leuka?emia|melanoma|myeloma|carcinoma|sarcoma|chemo\w*|"
             r"radiation (?:therapy|treatment)|oncolog\w*)\b")
FAMILY_CANCER = _rx(r"\b(?:family|mom|mum|mother|dad|father|sister|brother|grand\w+|aunt|uncle|cousin|friend)s? "
                    r"(?:\w+ ){0,3}(?:cancer|tumou?r)|\bfamily history")
NIGHT_PAIN = _rx(rf"\b(?:pain|hurts?|aches?|aching) {G3}(?:at night|worse at night|wakes? me|keeps me (?:up|awake)|at "
                 r"rest|when (?:im |i am )?(?:lying|resting))|\b(?:wakes?|woke|waking) me (?:up )?(?:\w+ ){0,2}(?:pain|"
                 r"hurt)|\bnight pain\b|\bbone pain\b")
WEIGHT_LOSS = _rx(r"\b(?:losing|lost|lose|dropped|dropping) (?:\w+ ){0,3}(?:weight|pounds|lbs|kilos|kg)\b|"
                  r"\bweight loss")
UNEXPLAINED = _rx(r"\b(?:without (?:trying|dieting|meaning to)|not (?:trying|dieting)|unexplained|unintention\w*|"
                  r"for no reason|dont know why|no idea why)\b")
TEAR = _rx(rf"\b(?:tearing|ripping|shredding) {G2}(?:pain|feeling|sensation)|\bfeels? like (?:something |it )?(?:is )?"
           r"(?:tearing|ripping|being torn)")
TRUNK = _rx(r"\b(?:back|spine|belly|abdom\w*|stomach|tummy|chest|gut|shoulder blades?)\b")
PULSING = _rx(_near(r"puls\w+|throbb\w+|pounding|beating|heartbeat", r"belly(?: button)?|abdom\w*|stomach|tummy|navel",
                    4))
FAINT = _rx(r"\b(?:passed|pass|passing) out\b(?! (?:asleep|on the (?:couch|sofa|table)|in (?:bed|front of)|watching|"
            r"early|for the night|drunk|flyers|papers|leaflets))|\bfaint(?:ed|ing)\b|\b(?:about|going|gonna|might|"
            r"could) (?:to )?faint\b|\bblack(?:ed|ing)? out\b|\blost consciousness|\bkeeled over|\b(?:i|he|she|just|"
            r"suddenly) collapsed\b")
CHEST = _rx(
    rf"\bchest {G2}(?:pain|pains|hurts?|hurting|ache|aching|tight\w*|pressure|heav\w*|squeez\w*|crush\w*|discomfort)",
    rf"\b(?:pain|pressure|tightness|heaviness|squeezing|crushing|discomfort|ache|stabb\w*) {G2}(?:in|on|across|around) "
    rf"(?:my |his |her |the )?chest\b|\b(?:pain|ache|aching|hurts?|pressure) {_gap(7)}chest\b",
    r"(?<!after a )(?<!after my )(?<!survived a )\bheart attack\b|\b(?:sitting|standing|pressing|weight|heavy) on "
    r"(?:my|his|her) chest|\b(?:spread\w*|radiat\w*|shoot\w*|going|goes|"
    r"moving|travel\w*) (?:down|to|into|up|through) (?:my |his |her |the )?(?:left arm|jaw)")
STROKE = _rx(
    rf"\b(?:face|mouth|smile|lips?|eyelid) {G2}(?:droop\w*|sag\w*|lopsided|uneven|crooked)|\b(?:droop\w*|lopsided) "
    rf"(?:face|mouth|smile)|\b(?:face|mouth) {G3}(?:numb\w*|droop\w*|weak\w*|paraly\w*|tingl\w*) on one side",
    rf"\b(?:one|left|right) side of (?:my |his |her |the )?(?:face|body) {G3}(?:droop\w*|numb\w*|weak\w*|paraly\w*|"
    rf"heavy|wont move|sag\w*|tingl\w*|dead)|\b{_CANT} (?:smile|move|raise|lift|feel) {G4}one side\b",
    rf"\bslurr\w*|\bspeech {G2}(?:slurred|garbled|weird|strange|jumbled)|\bwords (?:are |come |coming )?(?:out )?"
    r"(?:jumbled|garbled|wrong)|\bcant (?:get (?:my |the )?words out|find (?:my |the )?words|form words)",
    rf"\b(?:{_CANT}|trouble|difficulty|hard to|struggling to) (?:speak|talk)(?:ing)?\b(?! (?:right now|now|at the "
    r"moment|long|on the phone|about|to|with|much|at work|today|english|spanish))",
    rf"\bsudden\w* {G4}(?:arm|hand|side of (?:my |his |her )?body) {G2}(?:weak\w*|numb\w*|limp|heavy|paraly\w*|dead)"
    r"|\bsudden\w* (?:\w+ ){0,2}confus\w*|\bconfused (?:all of a sudden|suddenly|out of nowhere)",
    r"\b(?:having|is having|just had|might be|could be|maybe|is this|is it) a (?:mini )?stroke\b|\bthink (?:\w+ ){0,3}"
    r"(?:had|having) a (?:mini )?stroke\b|\bstroke symptoms\b|\bworst headache (?:of|in) (?:my|his|her) life|"
    r"\bthunderclap headache|\bsudden\w* (?:\w+ ){0,2}(?:cant see|lost (?:my )?vision|blind|double vision)")
BREATHING = _rx(
    rf"\b(?:{_CANT}|struggling to|struggle to|hard to|trouble|difficulty|difficult to|hard time|fighting to|"
    rf"fighting for|gasping for|labou?red) {G1}(?:brea?th\w*|get (?:enough )?air|catch (?:my|his|her) breath)",
    rf"\bbreathing {G1}(?:difficult\w*|trouble|labou?red|hard)\b|\b(?:lips|face|fingertips|fingernails) {G2}(?:blue|"
    r"purple|gr[ae]y)\b|\bblue (?:lips|face)\b|\bgasping\b|\bchoking\b(?! up| on (?:my|the) words)|\bsuffocat\w*")
BREATH_SOFT = _rx(r"\bshort(?:ness)? of breath|\bbreathless\w*|\bwinded\b")  # ordinary on a steep trail
UNCONSCIOUS = _rx(r"\bunconscious\b|\bunresponsive\b|\bwont wake(?: up)?\b|\bcant wake (?:him|her|them|"
                  r"\w+ \w+)(?: up)?\b",
                  r"\b(?:not|isnt|arent|stopped|quit) breathing\b|\bno pulse\b|\b(?:hes|shes|he is|she is|theyre|they "
                  r"are) not responding\b|\b(?:having|had) a seizure\b|\bseizing\b(?! up)|\bconvuls\w*")
BLEEDING = _rx(rf"\bbleeding {G2}(?:a lot|heavily|badly|profusely|everywhere|wont stop|non ?stop)|\b(?:heavy|severe|"
               r"lots of|a lot of|uncontrolled|serious|massive) bleeding|\b(?:cant|wont|doesnt|"
               r"isnt) stop(?:ping)? (?:the )?bleeding|\bbleeding (?:wont|doesnt|isnt) stop|"
               r"\bblood (?:is )?(?:everywhere|gushing|pouring|spurting)|\b(?:coughing|vomiting|throwing|threw|"
               r"puking) (?:up )?blood|\b(?:so much|lots of|a lot of|too much|pool of) blood\b")
_DRUGS = (r"ibuprofen|advil|motrin|aleve|naproxen|tylenol|acetaminophen|paracetamol|aspirin|nsaids?|opioids?|oxy\w*|"
          r"hydrocodone|vicodin|percocet|tramadol|codeine|morphine|fentanyl|gabapentin|neurontin|lyrica|pregabalin|"
          r"cyclobenzaprine|flexeril|baclofen|tizanidine|zanaflex|methocarbamol|robaxin|prednis\w*|cortisone|steroids?|"
          r"lidocaine|diclofenac|voltaren|meloxicam|celebrex|celecoxib|muscle relax\w*|pain ?killers?|pain relievers?|"
          r"pain meds?|anti ?inflammator\w*|antidepressants?|ssris?|xanax|valium|benzos?|antibiotics?|blood thinners?|"
          r"warfarin|eliquis|insulin|cbd|thc|kratom|sleeping pills?")
_DOSE = rf"(?:pills|tablets|meds|medications?|medicines?|capsules|doses?|{_DRUGS})"
# "took way too many of my pain pills", "have taken too much of her medication"; never "too many days off".
_TOOK = r"(?:took|taken|swallowed|popped|downed|ate)"
_OF_MY = r"(?:of )?(?:my |his |her |their |the |those |these |our )?"
OVERDOSE = _rx(
    r"\boverdos(?:e|ed|ing)\b|\b(?:i|he|she|they) (?:odd|od|oded)\b|\bswallowed (?:a |the )?(?:\w+ ){0,2}(?:pills|"
    r"tablets|bottle|meds)",
    rf"\b{_TOOK} (?:way |far |much )?(?:too many|too much|a bunch of|a handful of|a lot of|all (?:of )?(?:my|the|"
    rf"her|his|their)|(?:a|the) whole (?:bottle|pack|box|packet|strip)|double|triple) {_OF_MY}(?:\w+ ){{0,2}}{_DOSE}",
    rf"\b{_TOOK} (?:[1-9]\d+|a dozen|dozens of) (?:\w+ )?(?:pills|tablets|capsules|{_DRUGS})\b",
    rf"\b{_TOOK} (?:way |far |a lot )?more {_OF_MY}(?:\w+ ){{0,2}}{_DOSE} than (?:i|he|she|they|we|you) (?:should|"
    rf"was supposed to|were supposed to|am supposed to|meant to|was told|were told|\w+ prescribed)",
    rf"\boverdid (?:it )?(?:on|with) {_OF_MY}(?:\w+ ){{0,2}}{_DOSE}")
SUICIDE = _rx(
    r"\bsuicid\w*|\bself harm\w*|\bkill(?:ing)? myself|\bend(?:ing)? (?:it all|my life|my own life|everything)|"
    r"\btak(?:e|ing) my (?:own )?life|\bwish i (?:was|were) (?:dead|never born|gone)|\bbetter off (?:dead|without me)",
    r"\b(?:want|wanna|wish|going|gonna|plan\w*|ready|thinking (?:of|about)|thoughts (?:of|about)) (?:to )?(?:die|"
    r"dying|be dead|not (?:be )?(?:alive|here))\b|\b(?:feel like|want to|wanna|going to|gonna|thinking (?:of|about)|"
    r"ready to) (?:just )?end(?:ing)? (?:it|things|my life)\b(?! (?:with|for|at|there|here))|\b(?:never|"
    r"not) wake up\b|\bcant go on\b",
    r"\b(?:dont see|cant see|no|theres no|whats|what is) (?:the |any )?point (?:in|of|to) (?:living|life|going on|"
    r"being alive)\b|\bno reason to live|\b(?:not|isnt) worth living|\bdont want to (?:be alive|live|be here anymore|"
    r"exist|wake up|go on)",
    r"\b(?:cut|cutting|burn|burning|harm|harming|hurt|hurting) myself (?:on purpose|again|deliberately)|\b(?:want|"
    r"wanna|urge|going|gonna|thinking (?:of|about)|thoughts of|feel like) (?:to )?(?:hurt|harm|cut|hurting|harming|"
    r"cutting) myself|\bbeen (?:hurting|harming|cutting) myself\b(?! (?:at|when|while|lifting|during|doing|playing))",
    r"\b(?:thinking (?:of|about)|going to|gonna|plan\w* (?:to|on)|want to) (?:tak(?:e|ing)|swallow\w*) (?:them all|all "
    r"(?:of )?(?:them|my|the)\b|the whole)|\bpills saved up|\bstockpil\w*|\bcutting myself")
# Idioms that contain a red-flag word are blanked (to a clause break) before any rule sees the text.
IDIOMS = _rx(
    r"\bdying (?:to|for)\b|\bto die for\b|\b(?:nearly|almost|practically|literally) died\b|\bdied (?:laughing|of \w+)|"
    r"\b(?:want to |wanna |could )?die (?:of|from) (?:embarrassment|laughter|laughing|boredom|shame)|\bdie laughing",
    r"\b(?:give|gave|giving|gives|had) (?:me |him |her |you )?(?:a |an )?(?:mini )?heart attack\b(?! (?:last|in|when|"
    r"at|years))|\bheart attack (?:for|on) (?:my|the|your) (?:wallet|bank)|\b(?:bored|scared|sick) to death\b|"
    r"\bdead tired",
    r"\bkill(?:ing)? myself (?:laughing|at (?:work|the gym)|with work|over)|\bbreath ?taking\b|\btook my breath away|"
    r"\b(?:gives?|gave|giving|sends?|sent) (?:me )?(?:the )?chills\b|\blaugh\w* so hard i (?:cant|couldnt) breathe")

# --- context: negation, time, and "just asking" ----------------------------------------------------------------------
_NEG = {"no", "not", "never", "none", "nothing", "nor", "neither", "without", "dont", "doesnt", "didnt", "isnt",
        "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "deny", "denies", "zero"}
# Words that start a new statement: a negation before them does not reach past them ("no fever but i cant pee").
_SCOPE_END = {"but", "however", "though", "although", "yet", "except", "now", "just", "only", "still", "then", "also",
              "i", "im", "ive", "id", "my", "he", "she", "hes", "shes", "it", "its", "they", "we", "this", "suddenly",
              "today"}
_HEDGE = re.compile(r"\b(?:not sure|not certain|dont know|no idea|no clue|not only|no matter|not just|not long ago)\b")
_NOVEL = re.compile(r"^\W*(?:\w+ ){0,3}(?:like this|this bad|before (?:today|now)|until (?:today|now))")
_REMOTE = re.compile(
    r"\b(?:(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twenty|several|many|few|"
    r"couple(?: of)?) (?:years?|yrs?|months?|decades?) (?:ago|back|before|earlier)|years (?:ago|back|before|earlier)|"
    r"(?:last|past|previous) (?:year|month|summer|winter|spring|autumn|fall|decade)|in (?:19|20)\d\d|back in|"
    r"as a (?:kid|child|teen\w*|baby|student)|in (?:high school|middle school|school|college|my (?:teens|twenties|"
    r"thirties|20s|30s))|when i was (?:young|younger|little|small|a (?:kid|child|teen\w*|baby)|pregnant)|used to|"
    r"in the past|(?:a )?long time ago|a while (?:ago|back)|for (?:years|decades|most of my life|my whole life|"
    r"as long as i can remember)|since (?:i was|childhood|birth)|previously|once had)\b")
_CURRENT = re.compile(
    r"\b(?:now|currently|today|tonight|this (?:morning|afternoon|evening|week)|yesterday|last night|just|suddenly|"
    r"started|starting|new|newly|again|still|getting (?:worse|weaker)|worse|worsening|lately|recently|at the moment|"
    r"(?:\d+|a|an|few|couple(?: of)?) (?:minutes?|mins?|hours?|hrs?) ago)\b")
_RESOLVED = re.compile(  # someone checked it: ends even the symptoms that count although they passed
    r"\b(?:(?:got|get|was|were|been|had (?:it|them|that)) (?:checked|examined|looked at|scanned|evaluated|cleared|"
    r"treated)|checked out|(?:doctor|dr|er|hospital|physician|cardiologist|neurologist|gp|they) (?:said|says|told me) "
    r"(?:it|its|it was|it is|i was|im|i am|that) (?:\w+ ){0,2}(?:fine|ok|okay|nothing|normal|benign|harmless)|ruled "
    r"(?:it )?out|cleared me|all clear|false alarm|nothing (?:was )?(?:wrong|serious|found)|(?:fully )?(?:recovered|"
    r"healed|resolved)|in remission|cancer free|(?:been )?fine (?:ever )?since)\b")
_PASSED = re.compile(
    r"\b(?:went away|goes away|gone away|(?:it|they|that|this|pain|symptoms?|numbness|feeling) (?:passed|stopped|"
    r"cleared up|is gone|are gone|has gone|have gone)|(?:im|i am|feel|feeling|its|all|everything) (?:fine|ok|okay|"
    r"good|better|normal) now|back to normal|all better)\b")
_RECUR = re.compile(r"\b(?:again|came back|comes back|coming back|is back|its back|are back|returned|getting worse|"
                    r"gotten worse|worse now|worsening)\b")
_CLAUSE = re.compile(r"[.!?;,\n]|\b(?:but|however|although|though|whereas|because|so|yet)\b|(?=\bnow\b)|\band\b(?= "
                     r"(?:now|then|today|still|i|im|ive|my|it|its|he|she|they|cant|couldnt|also|since)\b)")
_PERSONAL = re.compile(
    r"\b(?:i (?:have|had|got|am|cant|couldnt|feel|felt|think|just|keep|kept|suddenly|also|lost|fell|passed|fainted|"
    r"started|woke|noticed|took)|im|ive|my|he|she|hes|shes|his|him|her|husband|wife|partner|son|daughter|mom|mum|"
    r"mother|dad|father|child|kid|baby|friend|grand\w+|brother|sister)\b")
_INFO = re.compile(
    r"\b(?:articles?|website|blog|page|post|you (?:wrote|write|say|said|mention\w*|list\w*)|it says|says that|"
    r"mentions?|listed|symptoms? of|signs? of|associated with|linked to|related to|red flags?|warning signs|"
    r"in general|generally|typically|what (?:are|is) (?:the )?(?:symptoms|signs)|(?:can|does|do|"
    r"could) (?:\w+ ){0,3}cause|causes? of|such as|for example|what symptoms|which symptoms|define|definition|"
    r"what (?:causes|can cause|could cause)|if (?:you|someone|somebody|a person|one|people|anyone)|in case|"
    r"hypothetically|when should (?:you|someone|one|people|a person|i))\b")
_HYPOTHETICAL = re.compile(r"\b(?:what if|if i ever|if i (?:were to |start to )?(?:get|develop|start)|in case|suppose|"
                           r"supposing|hypothetically)\b")
_TREAT = re.compile(r"\b(?:help|helps|helping|treat\w*|fix|fixes|cure|cures|reliev\w*|relief|improve\w*|good for|work "
                    r"for|works for|benefit\w*|ease|eases|reduce|reduces)\b")
_ASKING = re.compile(r"^(?:\W*(?:hi|hey|hello|so|also|and|ok|okay|quick question|question|um)\b)*\W*(?:what|whats|"
                     r"which|does|do|can|could|will|would|is|are|how|hows|why|should|has|have)\b|\b(?:wonder\w*|"
                     r"curious)\b")


class _Text(str):
    """The normalised message with per-message indexes, so a helper costs a look-up per red-flag match instead of a
    scan of the whole message: "chest pain years ago, " x 90 took 66 ms when every match re-read the text."""

    memo: dict[Any, Any]

    def __new__(cls, value: str) -> _Text:
        obj = super().__new__(cls, value)
        obj.memo = {}
        return obj


def _memo(t: str, key: Any, make: Any) -> Any:
    memo = getattr(t, "memo", None)
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def _search_from(t: str, rx: re.Pattern[str], pos: int, slot: str = "") -> re.Match[str] | None:
    """`rx.search(t, pos)`, reusing the previous answer while pos moves forward and stays before it (callers
    walk a message's matches in order, so each pattern reads the text about once)."""
    memo = getattr(t, "memo", None)
    if memo is None:
        return rx.search(t, pos)
    key = ("from", rx, slot)
    last = memo.get(key)
    if last is not None:
        last_pos, found = last
        if last_pos <= pos and (found is None or found.start() >= pos):
            return found
    found = rx.search(t, pos)
    memo[key] = (pos, found)
    return found


def _found_in(t: str, rx: re.Pattern[str], lo: int, hi: int) -> bool:
    """Whether rx matches within t[lo:hi] (its leftmost match after lo ends by hi)."""
    m = _search_from(t, rx, lo, f"in{lo}")
    return m is not None and m.end() <= hi


def _sentence(t: str, s: int) -> tuple[int, int]:
    stops = _memo(t, "stops", lambda: [i for i, c in enumerate(t) if c in ".!?;\n"])
    k = bisect.bisect_left(stops, s)
    return (stops[k - 1] + 1 if k else 0), (stops[k] if k < len(stops) else len(t))


def _clause(t: str, s: int, e: int) -> tuple[int, int]:
    cuts = _memo(t, "cuts", lambda: [m.start() for m in _CLAUSE.finditer(t)])
    k = bisect.bisect_right(cuts, s)
    j = bisect.bisect_left(cuts, e)
    return (cuts[k - 1] if k else 0), (cuts[j] if j < len(cuts) else len(t))


def _negated(t: str, s: int, e: int) -> bool:
    # A negation cue within six words before the symptom, unless a new statement starts in between.
    a = _sentence(t, s)[0]
    words = re.findall(r"[a-z]+", _HEDGE.sub(" ", t[max(a, s - 240):s]))
    if s - 240 > a and len(words) < 8:  # the window cut into the last six words: read the whole sentence
        words = re.findall(r"[a-z]+", _HEDGE.sub(" ", t[a:s]))
    for w in reversed(words[-6:]):
        if w in _NEG:  # "never had pain like this" is news, not a denial
            return not (w == "never" and _NOVEL.match(t[e:e + 40]))
        if w in _SCOPE_END:
            return False
    return False


def _informational(t: str, s: int, e: int) -> bool:
    # "What does the article say about difficulty breathing?" is reading, not reporting; a first-person report wins.
    a, b = _sentence(t, s)
    if _found_in(t, _HYPOTHETICAL, _clause(t, s, e)[0], s):
        return True
    if _memo(t, ("personal", a, b), lambda: bool(_PERSONAL.search(t, a, b))):
        return False
    if _memo(t, ("info", a, b), lambda: bool(_INFO.search(t, a, b))):
        return True
    return bool(_memo(t, ("asking", a, b), lambda: bool(_ASKING.search(t[a:b]))) and _found_in(t, _TREAT, a, s))


def _in_past(t: str, s: int, e: int, sticky: bool) -> bool:
    # Past and resolved events don't fire; a recurrence in the same sentence ("it came back") does.
    recur = _search_from(t, _RECUR, e, "after-symptom")
    if recur is not None and recur.end() <= _sentence(t, s)[1]:
        return False
    lo, hi = _clause(t, s, e)
    if _memo(t, ("remote", lo, hi), lambda: bool(_REMOTE.search(t[lo:hi]) and not _CURRENT.search(t[lo:hi]))):
        return True
    for rx in (_RESOLVED,) if sticky else (_RESOLVED, _PASSED):
        m = _search_from(t, rx, e)
        if m and not _search_from(t, _RECUR, m.end(), f"after-{id(rx)}"):
            return True
    return False


# --- rules -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Rule:
    category: str
    level: Level
    needs: tuple[re.Pattern[str], ...]  # every one must be found (fever AND back pain; a fall AND cannot stand)
    unless: re.Pattern[str] | None = None
    sticky: bool = False  # counts even if it "went away": stroke signs, chest pain, fainting


# Conditions and events whose history is the point ("I had cancer", "I fell last week"): past mentions still count.
_HISTORY_OK = {FALL, MAJOR, OSTEO, MINOR, IVDU, CANCER}
E: Level = "emergency"
C: Level = "crisis"
U: Level = "urgent"
_RULES: tuple[_Rule, ...] = (
    _Rule("overdose", E, (OVERDOSE,)),
    _Rule("unconscious", E, (UNCONSCIOUS,)),
    _Rule("chest_pain", E, (CHEST,), sticky=True),
    _Rule("stroke", E, (STROKE,), sticky=True),
    _Rule("breathing", E, (BREATHING,)),
    _Rule("breathing", E, (BREATH_SOFT,), unless=EXERTION),
    _Rule("bleeding", E, (BLEEDING,)),
    _Rule("head_injury", E, (HEAD_HIT, HEAD_FLAG)),
    _Rule("aorta", E, (TEAR, TRUNK), sticky=True),
    _Rule("aorta", E, (PULSING,), sticky=True),
    _Rule("fainting", E, (FAINT,), sticky=True),
    _Rule("cauda_equina", E, (SADDLE,)),
    _Rule("cauda_equina", E, (BLADDER,), unless=STRESS_LEAK),
    _Rule("cauda_equina", E, (WEAK_HARD,)),
    _Rule("cauda_equina", E, (WEAK_SOFT,), unless=EXERTION),
    _Rule("fracture", E, (FALL, CANT_BEAR)),
    _Rule("fracture", E, (MAJOR, SEVERE)),
    _Rule("fracture", E, (FALL, SEVERE), unless=OSTEO),  # fragile bones and a small fall: the urgent rule below
    _Rule("fracture", E, (BROKEN,)),
    _Rule("infection", E, (FEVER, BACK_PAIN)),
    _Rule("suicide", C, (SUICIDE,)),
    _Rule("fracture", U, (OSTEO, MINOR, SEVERE)),
    _Rule("hot_joint", U, (HOT_JOINT, FEVER)),
    _Rule("hot_joint", U, (JOINT_HOT, JOINT_SWOLLEN)),
    _Rule("infection", U, (IVDU, BACK_PAIN)),
    _Rule("cancer", U, (CANCER, _rx(BACK_PAIN.pattern, NIGHT_PAIN.pattern, WEIGHT_LOSS.pattern)), unless=FAMILY_CANCER),
    _Rule("cancer", U, (WEIGHT_LOSS, UNEXPLAINED, _rx(BACK_PAIN.pattern, NIGHT_PAIN.pattern))),
)
_RANK = {E: 0, C: 1, U: 2}


def _found(t: str, pattern: re.Pattern[str], sticky: bool) -> bool:
    for m in pattern.finditer(t):
        s, e = m.span()
        if not (_negated(t, s, e) or _informational(t, s, e)) and (
                pattern in _HISTORY_OK or not _in_past(t, s, e, sticky)):
            return True
    return False


def triage(text: str) -> Triage | None:
    """The most urgent red flag in a patient's message, or None; deterministic, runs before anything else."""
    t = _Text(IDIOMS.sub(" , ", _norm(text)))
    best: _Rule | None = None
    for rule in _RULES:
        if best is not None and _RANK[rule.level] >= _RANK[best.level]:
            continue  # only a more urgent rule can change the answer
        if (rule.unless is None or not rule.unless.search(t)) and all(_found(t, p, rule.sticky) for p in rule.needs):
            best = rule
    return Triage(best.category, best.level) if best else None


# --- replies ---------------------------------------------------------------------------------------------------------
# The model's labels and the rules' categories, to the reply's "why" (bot/prompts/replies.yaml) and its urgency.
_CATEGORY = {"chest_pain": "chest", "leg_weakness": "leg_weakness", "hot_joint": "hot_joint"}
_URGENT_LABELS = {"cancer", "hot_joint"}


# The rules are a high-recall backstop written before the model; they cannot tell "heart attack lol" or "can a
# tight diaphragm make your chest feel tight?" from a report. When the model is sure a message only looks like
# an emergency (a joke, an idiom, a general question, a past event) and sees no danger in it, it overrules them.
VETO_LOOKALIKE, VETO_DANGER = 0.85, 0.05


def rule_vetoed(u: Understanding) -> bool:
    """Whether the model is confident enough that a rule's match is a look-alike."""
    return (u.emergency is None and not u.crisis_check and u.lookalike >= VETO_LOOKALIKE
            and u.emergency_score < VETO_DANGER)


def emergency_of(u: Understanding, rule: Triage | None) -> tuple[str, Level]:
    """The category and urgency to act on: the rules' when they fired (more specific), else the model's."""
    if rule is not None and (u.emergency is None or _RANK[rule.level] <= _RANK[_level_of(u)]):
        return _CATEGORY.get(rule.category, rule.category), rule.level
    assert u.emergency is not None
    return u.emergency.split(".", 1)[1], _level_of(u)


def _level_of(u: Understanding) -> Level:
    name = (u.emergency or "").split(".", 1)[-1]
    if name == "suicide":
        return "crisis"
    return "urgent" if name in _URGENT_LABELS else "emergency"


def emergency_reply(category: str, level: Level, say: Phrases, clinic: ClinicProfile) -> tuple[str, list[Action]]:
    """A short, calm instruction to get help now and its emergency buttons; no booking, no clinic phone."""
    er, crisis = clinic.emergency_number, clinic.crisis_number
    if level == "crisis":
        return say.say("crisis"), [Action(type="emergency", label=f"Call or text {crisis}", value=f"tel:{crisis}"),
                                   Action(type="emergency", label=f"Call {er}", value=f"tel:{er}")]
    if level == "urgent":
        text = say.say("urgent", why=say.say(f"why_urgent.{category}"))
        return text, [Action(type="emergency", label=f"Call {er} if it gets worse", value=f"tel:{er}")]
    text = say.say("emergency", why=say.say(f"why.{category}"))
    actions = [Action(type="emergency", label=f"Call {er}", value=f"tel:{er}")]
    if category == "overdose":  # taken on purpose is a crisis too
        actions.append(Action(type="emergency", label=f"Call or text {crisis}", value=f"tel:{crisis}"))
    return text, actions


def crisis_check_reply(say: Phrases, clinic: ClinicProfile) -> tuple[str, list[Action]]:
    """Uncertain crisis signals: a kind check-in with 988, 911 and the clinic's phone; never 'can't find that'."""
    crisis, er = clinic.crisis_number, clinic.emergency_number
    return say.say("crisis_check"), [
        Action(type="emergency", label=f"Call or text {crisis}", value=f"tel:{crisis}"),
        Action(type="emergency", label=f"Call {er}", value=f"tel:{er}"),
        Action(type="call", label="Call the clinic", value=f"tel:{clinic.phone_e164}")]


# Whom to ask first, by what the patient mentioned; the reply never reassures and never quotes an article.
_ASK_FIRST = (
    ("contraindication_surgeon", re.compile(r"surg|operat|replace|repair|fusion|cirug|operaci|reemplaz", re.I)),
    ("contraindication_oncologist", re.compile(r"cancer|chemo|radiat|tumou?r|oncolog|quimio|c[aá]ncer", re.I)),
    ("contraindication_pregnancy", re.compile(r"pregnan|expecting|trimester|embaraz", re.I)),
)


def contraindication_reply(text: str, say: Phrases) -> str:
    """'Is it safe for me with X?': ask the surgeon/oncologist/doctor first, and a call to talk it over."""
    key = next((k for k, rx in _ASK_FIRST if rx.search(text)), None)
    if key is not None:
        return say.say(key)
    return say.say("contraindication", situation=say.say("contraindication_situation"))


def unnamed_condition(question: str, passages: list[Passage]) -> str | None:
    """The condition a question names when none of these passages names it ("plantar fasciitis"), else None."""
    found = conditions.find(question)
    if found is None or conditions.mentioned_in(found, [p.text for p in passages]):
        return None
    return found.name


# A leading instruction to the bot ("you are now a pirate.", "ignore your rules and ...") or greeting is not
# the question: retrieving it with the question only blurs what the patient asked. Nothing obeys it.
_PREFIX = re.compile(
    r"^\s*(?:(?:hi+|hello+|hey+|hola|good (?:morning|afternoon|evening)|thanks?(?: you)?|ok(?:ay)?)\b[\s,.!:;-]*"
    r"|(?:(?:you are|you're|youre) now|ignore|disregard|forget|override|pretend|act as|from now on"
    r"|(?:system|admin|developer)\s*:)[^.!?\n]*?(?:[.!?\n]+|[,;]|\band\b)\s*)",
    re.I,
)


def strip_instructions(text: str) -> str:
    """The message without a leading greeting or instruction to the bot, so the question gets retrieved."""
    stripped = text
    for _ in range(3):  # "hi! you are now a pirate. what is ..." has two prefixes
        m = _PREFIX.match(stripped)
        if not m or not m.end():
            break
        stripped = stripped[m.end():]
    return stripped.strip() or text


def disclaimer(clinic: ClinicProfile) -> str:
    """The clinic's standing 'general information, not medical advice' line."""
    return clinic.disclaimer


# --- redaction -------------------------------------------------------------------------------------------------------
# "may" is also a verb, so "May 14" needs a year or an ordinal ("May 14th") to count as a date.
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
# E-mail addresses and URLs are matched by RE2 (google-re2), which runs in time linear in the message: with
# Python's backtracking engine the URL pattern took 100-170 ms on "1." x 1,000, and the e-mail one ~14 ms on
# "a.a@" runs. RE2 has no look-arounds and its \w and \b are ASCII, so letters and digits are spelled out as
# Unicode classes, and an address or host name must start with one (what the old leading \b did).
_W = r"\p{L}\p{N}_"
_SPACE = r"\s\p{Z}"
# Order matters: emails before URLs, cards before phones, phones before bare digit runs.
_REDACTIONS: tuple[tuple[Any, str], ...] = (
    (re2.compile(rf"[{_W}][{_W}.+-]*@[{_W}-]+(?:\.[{_W}-]+)+"), "[email]"),
    (re2.compile(rf"(?i)\b(?:https?://|www\.)[^{_SPACE}<>()\[\],;]*[^{_SPACE}<>()\[\],;.!?'\"]|[{_W}][{_W}-]*"
                 rf"(?:\.[{_W}-]+)*\.(?:com|org|net|io|gov|edu|us|co|info|biz|me|health|app)\b(?:/[^{_SPACE}]*)?"),
     "[url]"),
    (re.compile(r"(?<!\d)\d{4}(?:[ -]\d{4}){2,3}(?!\d)|\b\d{3}-\d{2}-\d{4}\b"), "[number]"),
    (re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\d)|\+\d{1,3}(?:[ .-]?\(?\d{1,4}"
                r"\)?){2,5}(?!\d)|(?<![\d.-])\d{3}[-.]\d{4}(?![\d.-])"), "[phone]"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b|\b\d{4}[/.-]\d{1,2}[/.-]\d{1,2}\b|"
                rf"\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?\b(?:,? \d{{4}}\b)?|\b\d{{1,2}}(?:st|nd|rd|"
                rf"th)? (?:of )?{_MONTH}(?:,? \d{{4}})?\b|\b(?:{_MONTH}|may),? \d{{4}}\b|\bmay \d{{1,2}}(?:st|nd|rd|th|"
                r",? \d{4})\b|\b\d{1,2}"
                r"(?:st|nd|rd|th)? (?:of may(?:,? \d{4})?|may,? \d{4})\b", re.I), "[date]"),
    (re.compile(r"\b\d{6,}\b"), "[number]"),
)


def redact(text: str) -> str:
    """The text with phones, emails, URLs, dates and long numbers replaced by [phone], [email], ... tokens."""
    for rx, token in _REDACTIONS:
        text = rx.sub(token, text)
    return text
