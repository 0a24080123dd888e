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
from bot.types import Action

Level = Literal["emergency", "crisis", "urgent"]

DIAGNOSIS_NOTE = "Only a licensed medical provider can diagnose what is causing your symptoms."
MEDICATION_NOTE = "I can't advise on medicines or doses; please ask your doctor or pharmacist."
OUTCOME_NOTE = "No one can promise how treatment will work for you; everyone's body responds differently."


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
_WHY = {
    "cauda_equina": "new bladder or bowel trouble, numbness around the groin or new leg weakness can mean the nerves "
                    "at the base of the spine are being squeezed, which needs treatment within hours",
    "chest_pain": "chest pain or pressure can be a sign of a heart problem",
    "stroke": "these can be signs of a stroke, and every minute counts, even if they go away",
    "breathing": "serious trouble breathing needs help right away",
    "infection": "fever or chills with back pain can be a sign of a serious infection",
    "fracture": "after a fall or accident, severe pain or not being able to stand or walk can mean a broken bone",
    "aorta": "sudden tearing pain or a pulsing feeling in the belly can be a sign of a problem with a major blood "
             "vessel",
    "fainting": "fainting needs to be checked by a doctor right away",
    "bleeding": "heavy bleeding needs help right away",
    "head_injury": "a head injury with confusion, vomiting or drowsiness needs to be checked right away",
    "overdose": "taking too much of a medicine can be dangerous even if you feel all right now",
    "unconscious": "someone who is unconscious, not breathing or having a seizure needs help right away",
    "urgent:fracture": "With fragile bones, even a small fall or strain can cause a fracture",
    "urgent:infection": "Back pain with IV drug use or a weakened immune system can be a sign of infection",
    "urgent:hot_joint": "A hot, red, swollen joint, especially with a fever, can be a sign of infection",
    "urgent:cancer": "New back pain, night pain or unexplained weight loss should be checked by a doctor",
}


def emergency_reply(t: Triage, clinic: ClinicProfile) -> tuple[str, list[Action]]:
    """A short, calm instruction to get help now and its emergency buttons; no booking, no clinic phone."""
    er, crisis = clinic.emergency_number, clinic.crisis_number
    if t.level == "crisis":
        text = (f"I'm really sorry you're going through this, and I'm glad you said something. Please call or text "
                f"{crisis} (Suicide & Crisis Lifeline) now to talk with someone, any time, day or night. If you are in "
                f"immediate danger, call {er}.")
        return text, [Action(type="emergency", label=f"Call or text {crisis}", value=f"tel:{crisis}"),
                      Action(type="emergency", label=f"Call {er}", value=f"tel:{er}")]
    if t.level == "urgent":
        why = _WHY.get(f"urgent:{t.category}", "This should be checked by a doctor")
        text = (f"{why}. Please see a doctor or urgent care promptly (today). If it gets worse, call {er} or go to the "
                f"nearest emergency room.")
        return text, [Action(type="emergency", label=f"Call {er} if it gets worse", value=f"tel:{er}")]
    why = _WHY.get(t.category, "these symptoms need to be checked right away")
    text = f"Please call {er} or go to the nearest emergency room now: {why}. Please don't wait for a reply here."
    return text, [Action(type="emergency", label=f"Call {er}", value=f"tel:{er}")]


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


# --- scope guards ----------------------------------------------------------------------------------------------------
_CONDITIONS = (r"sciatica|herniat\w*|bulg\w* dis[ck]|slipped dis[ck]|dis[ck] (?:problem|issue|injury|bulge)|pinched "
               r"nerve|\w*arthritis|bursitis|tendin\w*|tendon\w*|stenosis|fracture|tear|torn \w+|strain|sprain|cancer|"
               r"tumou?r|infection|kidney stones?|fibromyalgia|scoliosis|spondyl\w*|\w+ syndrome|disease|condition|"
               r"disorder|injury|nerve damage|impingement|degenerat\w*|hernia|cyst|something serious")
DIAGNOSIS = _rx(
    r"\b(?:do|could|might|may|am) i (?:have|be having|possibly have|be suffering from|suffering from|be dealing with|"
    r"dealing with)\b(?! to\b| (?:an? |my |the |any )?(?:appointment|session|booking|visit|time|question|choice|"
    r"options?|insurance|openings?)\b)",
    rf"\b(?:is|could|might|would|can) (?:it|this|that|my \w+(?: \w+)?) (?:be )?(?:a |an |my |from |caused by |due to |"
    rf"just |actually |possibly )*{G2}(?:{_CONDITIONS})\b|\b(?:it|this|that) (?:sounds?|seems?|feels?) like (?:a |an |"
    rf"i have )?{G2}(?:{_CONDITIONS})|\bi think i (?:have|might have|may have|got) {G2}(?:{_CONDITIONS})",
    r"\b(?:is|could|might|would|can|may) (?:it|this|that|my \w+(?: \w+)?) (?:be |come )?(?:caus\w*|due to|because "
    r"of|related to|a sign of|a symptom of)\b|\b(?:is|could|might|would|can|may) (?:it|this|the pain|my \w+(?: \w+)?) "
    r"(?:be |come )?from (?:my|a|an)\b|\bdiagnos\w*|\bwrong with (?:me|my)\b|\bwhats? wrong\b",
    r"\bwhats? (?:is )?(?:causing|going on with|the (?:cause|reason) (?:of|for) (?:my|this|it))\b|\bwhat (?:could|"
    r"might|would|can) (?:be )?caus\w* (?:my|this|these|it)\b|\bwhat (?:do i|i) have\b|\bwhat (?:i|it) (?:could|"
    r"might) (?:have|be)\b",
    r"\bwhy (?:does|do|is|am|are) (?:my|i) (?:\w+ ){0,3}(?:hurt|hurting|ache|aching|numb|sore|in pain)\b|\bwhat "
    r"(?:condition|disease|injury) (?:do|could|might) i\b|\bwhat is wrong\b|\bis (?:it|this|that|my \w+(?: \w+)?) "
    r"(?:serious|bad|dangerous)\b(?! (?:to|for|if)\b)",
    r"\b(?:do|does) (?:you|it|this) (?:think|sound like|look like) (?:i|its|it is|this is|my)\b|\bis (?:it|"
    r"this) (?:my |a |the )?\w+ or (?:my |a |the )?\w+\b",
    # "is my posture the reason my back hurts": naming the cause of the patient's own pain is a diagnosis.
    r"\b(?:is|could|might|would|can|may) (?:it|this|that|my \w+(?: \w+)?) (?:be |really )?(?:the |a )?(?:main |real "
    r"|root )?(?:reason|cause|culprit|source)(?: (?:for|of|why|behind))? (?:my|i|im|it hurts|the pain)\b|\b(?:is|could|"
    r"might|would) (?:it|this|that|my \w+(?: \w+)?) (?:be )?(?:to blame|behind my)\b")
MEDICATION = _rx(
    rf"\b(?:{_DRUGS})\b|\bhow (?:much|many) (?:\w+ )?(?:should|can|do) i take\b|\bshould i (?:take|stop taking|keep "
    r"taking|start taking|try taking|be taking) (?:something|anything)\b",
    r"\b(?:medications?|(?<!alternative )(?<!eastern )(?<!western )(?<!chinese )(?<!sports )(?<!holistic )medicines?"
    r"(?! ball)|meds|prescriptions?|dosage|doses?|mg|milligrams?|pills?|tablets?|supplements?|over the counter)\b")
# Words that name a kind of session ("a massage therapy appointment"), not "the effects of a session".
_KIND = r"(?:(?!(?:of|after|before|from|since|until|for|in|with|not|no)\b)\w+ ){0,3}"
_SESSION = r"(?:sessions?|appointments?|appts?|treatments?|visits?|consult\w*|evaluations?|massages?|class(?:es)?)"
# In priority order: "is there a fee if I cancel" is about cancellation before it is about price.
_FACTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((slot, _rx(*parts)) for slot, parts in (
    ("discount", (r"\bdiscount\w*|\bfree (?:session|consult\w*|trial|visit|treatment|evaluation|massage|first|"
                  r"intro\w*)",
                  rf"\b(?:first|initial|intro\w*) {_SESSION} (?:is |for )?free|\bcoupons?\b|\bpromo\w*|\bspecials?\b",
                  r"\bdeals?\b(?! with)|\bgroupon|\bvouchers?|\bgift (?:cards?|certificates?)|\bsliding scale|"
                  r"\bcheaper\b|\breduced (?:rate|price|fee)")),
    ("cancellation", (r"\bcancel\w*|\bno ?shows?\b|\blate (?:fee|policy)|\bmiss(?:ed)? (?:my |an |the )?(?:appointment|"
                      r"session)|\b\d+ hours? notice|\brefund\w*",)),
    ("insurance", (r"\binsur\w*|\bmedicare|\bmedicaid|\bhsa\b|\bfsa\b|\bhealth savings|\bcovered (?:by|under|with)\b|"
                   rf"\b(?:is|are) (?:it|this|that|they|{_SESSION}) covered\b|\bco ?pays?\b|\bdeductible|\bin network|"
                   r"\bout of network|\bblue cross|\bbcbs|\baetna|\bcigna|\bunited ?health\w*|\btricare|\bhumana|"
                   r"\bsuperbill|\breimburs\w*",)),
    ("payment", (r"\b(?:pay|paying) (?:with|by|using|via|in cash|upfront)\b|\bpayment (?:methods?|options?|plans?)|"
                 r"\b(?:credit|debit) cards?|\bvenmo|\bpaypal|\bzelle|\bapple pay|\bcash only|\b(?:take|accept) (?:cash"
                 r"|cards?|checks?|credit|debit)|\bhow (?:do|can) i pay",)),
    ("price", (r"\bprices?\b|\bpricing|\bpriced\b|\bcosts?\b(?! (?:me|us|my|our|you|your|him|her|them))|\bcosting|"
               rf"\bfees?\b|\b(?:your|the|session|hourly|cash|self pay) rates?\b|\bhow much (?:is|are|for|per|does|do|"
               rf"would|will|to) {G3}(?:{_SESSION}|charge|cost|pay|run)\b|\bhow much (?:is|was) (?:it|that)\W*$",
               r"\bexpensive|\bafford\w*|\bout of pocket|\bself pay|\bwhat do you charge|\bdollars?\b")),
    # "how long does a first massage appointment usually last": a kind of session can sit before the noun.
    ("duration", (rf"\bhow (?:long|much time) (?:is|are|does|do|will|would|should|can) (?:a |an |the |each |one |your "
                  rf"|my )?{_KIND}{_SESSION}\b|\b{_SESSION} (?:length|duration)",
                  rf"\blength of (?:a |the |each |your |my )?{_SESSION}|\bhow many {_SESSION} (?:do|will|would|should|"
                  rf"does|is|are)\b|\bhow long (?:does|will) it (?:take|last)\W*$|\b(?:\d+|thirty|sixty|ninety) ?"
                  rf"(?:min\w*|hours?) (?:long )?{_SESSION}|\bhow (?:many )?(?:minutes|hours) (?:is|are|does|do) (?:a "
                  rf"|the |each |your )?{_SESSION}")),
    ("availability", (r"\bopenings\b|\ban opening\b|\bany opening\b|\bavailability\b|\bavailable (?:appointments?|"
                      r"slots?|times?|spots?|today|tomorrow|this|next|on|at|for (?:an? )?(?:appointment|session|"
                      r"visit))|\b(?:are|is) (?:you|there|anyone|anything|someone) available|\bany (?:slots?|spots?|"
                      r"times?|room)\b|\b(?:fit|squeeze) (?:me|us|my \w+) in\b|\bhow soon can\b|"
                      r"\bearliest (?:appointment|available|opening|time|slot)|\bnext (?:available|opening|open)|"
                      r"\bwait(?:ing)? ?list|\bwait time|\bbooked up|\bfully booked|\b(?:taking|"
                      r"accepting) new (?:patients|clients)",)),
    ("hours", (r"\b(?:your|business|office|opening|clinic) hours|\bwhat are (?:your |the )?hours|\bhours of operation|"
               r"\bhours (?:are you|do you|on)\b|\bwhat time (?:do|are|does|is) (?:you|the (?:clinic|office))|"
               r"\bwhen (?:are|do|does|is) (?:you|the (?:clinic|office)) (?:open|close|closed)|\b(?:are|r) (?:you|u|"
               r"yall) (?:open|closed)|\bopen (?:on |this |next |every )?(?:mon|tues?|wed|wednes|thu|thurs|fri|sat|"
               r"satur|sun)(?:days?)?\b|\bopen (?:on )?(?:weekends?|evenings?|late|early|today|tomorrow|on holidays)|"
               r"\bwork (?:on )?(?:weekends|saturdays|sundays|evenings)|\bwhat days (?:are|do) you|\bclos(?:e|"
               r"ing) time|\blatest (?:appointment|time)",)),
    ("parking", (r"\bparking\b|\b(?:place|spot|somewhere|where) to park\b|\b(?:where|can|do|should) (?:\w+ ){0,2}"
                 r"park\b|\bpark (?:there|nearby|near|on the street|outside|for free|at (?:the|your))",)),
    ("location", (r"\baddress\b|\bwhere (?:are|r) (?:you|u|yall)(?: guys)?(?: located| based| at)?\W*$|\bwhere (?:are|"
                  r"r) (?:you|u|yall) (?:located|based)|\bwhere (?:is|s) (?:the |your )?(?:clinic|office|practice|"
                  r"studio|building)\b|\b(?:your|clinic|office) location|\bdirections (?:to|from)\b|\bget directions|"
                  r"\bhow (?:do|can) i (?:get|find) (?:to )?(?:you|the (?:clinic|office)|your (?:clinic|office))\b|"
                  r"\bwhat (?:part of|area of) town|\bwhich (?:street|building|suite)|\bhow far (?:are|is) (?:you|the "
                  r"clinic)",)),
    ("staff", (r"\bwho (?:is|are|will|would|does|do|s) (?:the |my |your )?(?:therapists?|practitioners?|providers?|"
               r"owner|staff|treat\w*|work(?:ing)? (?:on|with|there)|do the)\b|\bwho (?:will i|would i|do i) (?:see|"
               r"work with|be seeing)|\b(?:therapist|practitioner|provider|owner)s? (?:name|credentials|background|"
               r"experience|qualifications|training|bio)\b|\bname of (?:the|your) (?:therapist|practitioner|owner)|"
               r"\bcredentials|\bcertifi\w*|\bqualifications|\b(?:is|are) (?:she|he|they|you|"
               r"the therapist) (?:licensed|certified|trained|a (?:physical therapist|massage therapist|doctor|"
               r"chiropractor))|\bhow (?:long|many years) (?:has|have) (?:she|he|they|you|"
               r"the therapist) (?:been (?:practicing|doing (?:this|it)|in practice|a therapist|licensed|certified)|"
               r"practic\w*)|\b(?:your|the) staff\b|\bhow many therapists|\bmale or female|\bwho works (?:there|here)",
               r"\bwhos the (?:therapist|practitioner|provider|owner)|\bwho(?:s| is| will|"
               r" would)? (?:be )?(?:treating|seeing|working on) me\b|\b(?:experienced|qualified|trained|"
               r"licensed) is (?:the|your|she|he)\b|\b(?:training|experience|background|qualifications|"
               r"certifications?) (?:does|do|has|have) (?:the |your )?(?:therapists?|practitioners?|she|he|they)\b")),
))
OUTCOME = _rx(
    r"\bguarant\w*|\bpromise\w*|\bsuccess rate|\bpermanent\w* (?:fix|cure|relief|results?)|\bnever come back|\bcured\b"
    r"|\bcure (?:my|me|it|this|the)\b",
    r"\b(?:will|would|can|could|does|is) (?:it|this|that|the treatment|treatment|therapy|a session|sessions|the "
    r"sessions|this treatment|\w+ release|you) (?:definitely |really |actually |completely |fully |permanently |for "
    r"sure )?(?:cure|fix|heal|eliminate|get rid of|solve|resolve|reverse)\b",
    r"\b(?:definitely|100 ?%|100 percent|for sure|surely|certainly|always) (?:work|help|fix|cure|heal)|\b(?:work|help|"
    r"fix|cure) for sure\b|\bwill (?:it|this|that) (?:definitely |really |actually )?work\b",
    rf"\bhow (?:many|long) {G4}(?:until|till|til|before|to (?:be|get|feel)) (?:i |im |my |it |the pain )?(?:\w+ )?"
    r"(?:fixed|cured|healed|better|pain ?free|gone|normal|recovered|goes away)|\b(?:will|would) i (?:\w+ ){0,2}(?:be|"
    r"get|feel) (?:\w+ ){0,2}(?:cured|fixed|healed|pain ?free|better|back to normal)",
    r"\b(?:will|would) (?:my|the) (?:\w+ ){0,2}(?:go away|disappear|be gone|stop|get better|be cured|be fixed|"
    r"heal)\b|(?<!how )(?<!why )\b(?:does|do) (?:it|this|they) (?:always |really |actually )?work\b|\b(?:get rid of|"
    r"fix) (?:\w+ ){0,3}(?:forever|for good|permanently)")
_CARE = (r"(?:the |an? )?(?:er|e r|emergency(?: room| department)?|hospital|urgent care|a ?and ?e|911|an ambulance|"
         r"doctor)")
# "What symptoms should make me go to the ER?" asks which symptoms are an emergency: a clinician's call, not the
# articles' (their symptom lists are not red flags). A report ("i have chest pain, should i go?") is triaged first.
SEEK_CARE = _rx(
    rf"\b(?:what|which) (?:\w+ )?(?:symptoms?|signs?|pain|problems?) {_gap(4)}(?:go|get|take|head|rush|send)\w* "
    rf"(?:me |you |someone |them |us )?(?:to|into) (?:see )?{_CARE}\b",
    rf"\bwhen (?:should|do|would|must|is it time to|to) (?:i |you |someone |one |people |we )?(?:\w+ )?(?:go to|get to|"
    rf"head to|call|see|visit) (?:see )?{_CARE}\b|\bshould i (?:go to|call|see) {_CARE}\b",
    r"\bhow (?:do|would|can|will) (?:i|you) (?:know|tell) (?:if|when|whether) (?:\w+ ){0,6}(?:(?:an? )?emergency|"
    r"serious|go to (?:the )?(?:er|hospital|emergency room)|call 911)\b|\b(?:red flags?|warning signs?|danger signs?|"
    r"emergency (?:signs|symptoms))\b")
TASK = _rx(
    r"(?<!i )(?<!we )(?<!they )\b(?:write|compose|draft|generate|create|make|give) (?:me |us )?(?:a |an |some |the |"
    r"my )?(?:\w+ )?(?:poem|poetry|story|song|essay|haiku|limerick|lyrics|code|script|program|function|cover letter|"
    r"resume|speech|rap|novel|tweet|caption|sonnet|joke|riddle|recipe|business plan|meal plan|itinerary)s?\b",
    r"\btell me (?:a |another |some )?(?:joke|story|riddle|fun fact)s?\b|\bany (?:good )?jokes\b|"
    r"\bsing (?:me )?a song|\btranslat\w*|\bhow do you say\b|\bstocks?\b|\bstock (?:price|market)|\bshare price|"
    r"\bcrypto\w*|\bbitcoin|\bnasdaq",
    r"\b(?:whats? the|how is the|hows the|todays|tomorrows) weather\b|\bweather (?:today|tomorrow|this weekend|in|like|"
    r"forecast|report)\b|\bforecast\b|\bwill it (?:rain|snow)\b|\b(?:sports?|game|match) scores?|\bwho won\b|\bscore "
    r"of the|\b(?:nfl|nba|mlb|nhl|super bowl|world cup|world series)",
    r"\b(?:recommend|suggest|good|best|find|nice) (?:\w+ ){0,2}restaurants?\b|\bwhere (?:should|can|to) (?:i |"
    r"we )?eat\b|\bplaces? to eat|\brecipes?\b|\bhow (?:do i|to|do you) (?:cook|bake)\b|\bcapital of\b|\btrivia\b|"
    r"\bwho invented|\bwho (?:was|is) the (?:first |current )?(?:president|king|queen|prime minister)",
    r"\bmath\b|\bhomework\b|\bsolve (?:this|for|the|my|\d|x\b)|\bequations?\b|\bcalculate\b|\bderivative|"
    r"\bwhat is \d+ (?:plus|minus|times|divided by|x) \d+|\b\d+ (?:plus|minus|times|divided by) \d+",
    r"\b(?:python|javascript|sql|html|css) (?:code|script|function|program|query)?|\bdebug (?:my|this)\b|\b(?:movie|"
    r"book|tv show|music) recommendations?|\b(?:movie|show) to watch|\bplay a game|\bchess\b")
INJECTION = _rx(
    r"\b(?:ignore|disregard|forget|override|bypass) (?:\w+ ){0,3}(?:instructions?|rules|prompts?|directions|guidelines|"
    r"guardrails|programming|training|restrictions|safety|filters?|polic(?:y|ies)|context)\b|\b(?:ignore|disregard|"
    r"forget) (?:everything|all) (?:above|before|previous|prior|you (?:were|have been) told)",
    r"\byou(?: are|re) now\b(?! (?:my )?(?:favorite|closed|open|booked|available)\b)|\b(?:ignore|disregard|"
    r"forget) (?:everything |all )?(?:the )?(?:above|previous|prior|preceding)\b|\bfrom now on (?:you|act|respond|"
    r"answer|only)|\byou (?:are|will be) no longer (?:a |an )?(?:bot|assistant|bound|restricted)|\bpretend (?:to be|"
    r"you|that|youre|your|were|we|i am|im)|\bact as (?:an? (?:unrestricted|different|new|evil|doctor|physician|human|"
    r"person|ai)|my)\b|\brole ?play|\bimagine you are",
    r"\b(?:developer|dev|debug|admin|god|unrestricted|jailbreak|dan) mode\b|\bjailbr[eo]\w*|\bdo anything now\b|"
    r"\bsystem (?:prompt|message|instructions?)|\b(?:your|the) (?:initial|original|hidden|secret) (?:instructions|"
    r"prompt|rules|programming)|\byour (?:prompt|programming)\b|\blets play a game where",
    r"\b(?:reveal|show|print|repeat|output|display|tell me|give me|leak) (?:me )?(?:your|the) (?:\w+ )?(?:prompt|"
    r"instructions|config\w*)|\bi (?:hereby )?(?:authori[sz]e you|give you permission|grant you permission|am "
    r"authori[sz]ing you)|\bnew instructions\b|\bsudo\b|\bno (?:restrictions|filters)\b|\bunfiltered\b|\buncensored\b",
    r"\bas (?:the|an?|your) (?:clinic )?(?:owner|admin\w*|administrator|developer|creator|programmer|manager|operator)"
    r"\b,? (?:\w+ ){0,4}(?:authori[sz]e|order|instruct|command|permit|allow|override|you (?:must|should|can|will|are))")
# "##" rather than "#{2,}": the same messages match, without re-reading a run of #s from every one of them.
_RAW_INJECTION = re.compile(r"<\|?(?:system|im_start)|\[(?:system|inst)\]|##\s*(?:system|instruction)", re.I)


def asks_diagnosis(text: str) -> bool:
    """True when the patient asks what condition they have or what is causing their symptoms."""
    return bool(DIAGNOSIS.search(_norm(text)))


def asks_medication(text: str) -> bool:
    """True when the message asks about medicines, doses, or starting or stopping them."""
    return bool(MEDICATION.search(_norm(text)))


def asks_clinic_fact(text: str) -> str | None:
    """The clinic-fact slot a message asks about (price, hours, insurance, ...), or None; specific slots win."""
    t = _norm(text)
    return next((slot for slot, rx in _FACTS if rx.search(t)), None)


def asks_outcome_promise(text: str) -> bool:
    """True when the message asks for a cure, a guarantee or a number of sessions until fixed."""
    return bool(OUTCOME.search(_norm(text)))


def asks_when_to_seek_care(text: str) -> bool:
    """True when the message asks which symptoms need the ER, 911 or a doctor, rather than reporting one."""
    return bool(SEEK_CARE.search(_norm(text)))


def seek_care_reply(clinic: ClinicProfile) -> str:
    """The honest answer to "when should I go to the ER?": the emergency number first, then their own clinician."""
    return (f"Our articles don't cover which symptoms need emergency care, and I can't judge that for you. If you "
            f"think you might be having an emergency, call {clinic.emergency_number} or go to the nearest emergency "
            f"room now. For any other symptom that worries you, please ask your doctor.")


def is_task_request(text: str) -> bool:
    """True for off-topic generic tasks: poems, code, jokes, translation, weather, scores, recipes, trivia, math."""
    return bool(TASK.search(_norm(text)) or re.search(r"\bwhat(?:'s| is) \d+\s*[-+*x×]\s*\d+", text.lower()))


def is_injection(text: str) -> bool:
    """True when the message tries to change the bot's rules ("ignore previous instructions", "you are now" ...)."""
    return bool(INJECTION.search(_norm(text)) or _RAW_INJECTION.search(text))
