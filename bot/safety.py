"""Deterministic safety: emergency triage first, scope checks, disclaimers and redaction. No model, no topics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.config import ClinicProfile
from bot.types import Action

Level = Literal["emergency", "crisis", "urgent"]

DIAGNOSIS_NOTE = "Only a licensed medical provider can diagnose what is causing your symptoms."
MEDICATION_NOTE = "I can't advise on medicines or doses; please ask your doctor or pharmacist."
OUTCOME_NOTE = "No one can promise how treatment will work for you, and our articles make no such promise."


@dataclass(frozen=True)
class Triage:
    """A red flag found in a message: what kind, and how urgent."""

    category: str
    level: Level


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.I)


# Patient words, not textbook terms. `'?` lets "cant"/"can't" and "dont"/"don't" both match.
CANT = r"(?:can'?t|cannot|can not|couldn'?t|unable to|not able to|no longer able to)"
LEGS = r"(?:legs?|foot|feet|ankles?|knees?)"
SADDLE = (r"(?:saddle|groin|genitals?|genital area|private (?:parts|area)|privates|inner thighs?|between my legs|"
          r"down there|crotch|perineum|butt(?:ocks)?|bum|bottom|where i sit|anus|rectum|rectal|vagina|penis|scrotum)")
NUMB = r"(?:numb\w*|no feeling|lost feeling|loss of feeling|can'?t feel|cannot feel|tingl\w*|pins and needles|dead)"

# Each category: symptom patterns; `needs` is an extra pattern that must also appear somewhere in the message.
RULES: list[tuple[str, Level, re.Pattern[str], re.Pattern[str] | None]] = [
    ("suicide", "crisis", _rx(
        r"\b(?:kill|killing|hurt|hurting|harm|harming|cut|cutting|end|ending) (?:myself|my self|my life|it all)\b",
        r"\bsuicid\w*", r"\b(?:want|wanna|going|ready|planning) to die\b", r"\bwish i (?:was|were) dead\b",
        r"\bdon'?t want to (?:live|be alive|be here anymore|wake up|exist)\b",
        r"\b(?:better off|world would be better) (?:dead|without me)\b", r"\bno reason to (?:live|go on)\b",
        r"\btake my (?:own )?life\b", r"\bself[- ]harm\w*", r"\bend things\b"), None),
    ("overdose", "emergency", _rx(r"\boverdos\w*", r"\btook (?:too many|a (?:whole )?bottle of|all (?:my|the)) "
                                  r"(?:pills|tablets|meds|medication)"), None),
    ("unconscious", "emergency", _rx(r"\b(?:unconscious|unresponsive|won'?t wake up|not breathing|"
                                     r"having a seizure|seizing|convulsing)\b"), None),
    ("cauda_equina", "emergency", _rx(
        r"\b(?:lost|losing|loss of|no|no more|don'?t have|can'?t|cannot|can not) (?:\w+ ){0,2}control (?:of|over) "
        r"(?:my )?(?:bladder|bowels?|peeing|pooping|urine)\b",
        r"\b(?:lost|losing|loss of) (?:my )?(?:bladder|bowel) (?:control|function)\b",
        r"\b(?:bladder|bowel) (?:control )?(?:problems?|issues?|trouble|accidents?|leak\w*)\b",
        r"\b(?:trouble|difficulty|problems?) (?:with )?(?:my )?(?:bladder|bowels?)\b",
        rf"\b{CANT} (?:pee|urinate|wee|empty my bladder|hold (?:it|my (?:pee|urine|bladder|bowels?|poop))|"
        r"control (?:my )?(?:bladder|bowels?|peeing|pooping))\b",
        r"\b(?:trouble|difficulty|hard time|problems?) (?:starting|stopping|controlling) "
        r"(?:to )?(?:pee|peeing|urinat\w*|my urine|my stream|urine)\b",
        r"\b(?:wet|peed|pooped|soiled|messed|pissed|shat) (?:myself|my pants|my underwear|the bed)\b",
        r"\b(?:leaking|leak|dribbling) (?:urine|pee|stool|poop)\b", r"\bincontinen\w*",
        rf"\b{NUMB}\b[^.?!]{{0,40}}\b{SADDLE}", rf"\b{SADDLE}\b[^.?!]{{0,30}}\b(?:is |are |feels? |went |gone |going )?"
        rf"{NUMB}", r"\bcauda equina\b", r"\bsaddle (?:anesthesia|anaesthesia|numbness)\b"), None),
    ("leg_weakness", "emergency", _rx(
        rf"\b{LEGS} (?:is |are |keeps? |kept |just )?(?:giving (?:out|way)|gave (?:out|way)|buckl\w+|collaps\w+)",
        r"\bfoot drop\b", r"\b(?:dragging|drag|dropping) my (?:foot|leg)\b",
        rf"\b{CANT} (?:lift|move|feel|raise) my (?:\w+ )?(?:leg|legs|foot|feet|toes)\b",
        rf"\b(?:sudden(?:ly)?|new|getting|growing|increasing|progressive|spreading|worsening)[^.?!]{{0,25}}"
        rf"\b(?:weak|weakness|weaker|paraly\w+|numb\w*)\b[^.?!]{{0,25}}\b{LEGS}",
        rf"\b{LEGS}[^.?!]{{0,25}}\b(?:getting|becoming|growing|suddenly|keeps? getting) "
        r"(?:weak|weaker|numb|number|paraly\w+)",
        r"\bboth (?:of my )?legs (?:are |feel |went |going )?(?:weak|numb|paraly\w+)",
        rf"\b(?:weak|numb|paraly\w+) in both (?:my )?{LEGS}"), None),
    ("chest_pain", "emergency", _rx(
        r"\bchest (?:pain|pains|pressure|tightness|is tight|feels tight|hurts|is hurting|heaviness|feels heavy|"
        r"is heavy|squeez\w+|discomfort)", r"\b(?:pain|pressure|tightness|squeezing) in (?:my |the )?chest\b",
        r"\bheart attack\b", r"\b(?:crushing|squeezing) (?:pain|pressure|feeling)\b",
        r"\bpain (?:spreading|radiating|shooting|going|moving) (?:to|down|into|up) (?:my )?(?:left )?(?:arm|jaw)"),
     None),
    ("stroke", "emergency", _rx(
        r"\b(?:face|mouth|smile|lip|eyelid) (?:is |feels |looks |went |has gone |started )?(?:\w+ )?"
        r"(?:droop\w*|sagging|crooked|lopsided|numb|paraly\w+)",
        r"\b(?:slurr\w+|garbled) (?:speech|words|my words|talking)\b", r"\bspeech (?:is |sounds )?(?:slurred|garbled)",
        rf"\b{CANT} (?:speak|talk|get (?:my |the )?words out|find (?:my|the) words|understand what people)",
        r"\b(?:one side|left side|right side|half) of (?:my |his |her )?(?:face|body)\b[^.?!]{0,20}"
        r"(?:numb|weak|droop\w*|paraly\w+)",
        r"\b(?:sudden(?:ly)?)[^.?!]{0,25}\b(?:arm|hand) (?:is |went |feels )?(?:weak|numb|limp|dead|heavy)",
        r"\b(?:arm|hand) (?:suddenly )?(?:went|is|feels) (?:limp|dead)\b",
        r"\bsudden(?:ly)? (?:\w+ )?(?:confus\w+|blind\w*|vision loss|lost (?:my )?vision|can'?t see)",
        r"\bworst headache (?:of my life|ever|i'?ve ever)", r"\b(?:having|had|think i'?m having) a stroke\b"), None),
    ("breathing", "emergency", _rx(
        rf"\b{CANT} (?:breathe|breath|catch my breath|get (?:enough )?air)\b",
        r"\b(?:struggling|fighting) (?:to breathe|for (?:air|breath))", r"\bgasping\b", r"\bchoking\b",
        r"\b(?:lips|face|fingers|fingertips) (?:(?:are|is|turning|turned|going|gone|look|looking|getting) ){0,2}"
        r"(?:blue|purple|gr[ae]y)\b",
        r"\bhaving (?:a )?(?:hard time|trouble|difficulty) breathing\b", r"\bsevere(?:ly)? short(?:ness)? of breath",
        r"\b(?:trouble|difficulty|hard time) breathing (?:right now|now|suddenly|all of a sudden)"), None),
    ("aorta", "emergency", _rx(
        r"\b(?:tearing|ripping|shearing)\b[^.?!]{0,30}\b(?:pain|feeling|sensation)",
        r"\b(?:pain|feeling)[^.?!]{0,15}\b(?:tearing|ripping)\b",
        r"\b(?:puls\w+|throbbing|pounding|heartbeat)[^.?!]{0,20}\b(?:belly|abdomen|stomach|tummy)",
        r"\bsudden(?:ly)?[^.?!]{0,30}\b(?:worst|unbearable|excruciating|agonizing)\b[^.?!]{0,30}"
        r"\b(?:belly|abdomen|abdominal|stomach|tummy)", r"\baneurysm\b"), None),
    ("fainting", "emergency", _rx(r"\b(?:fainted|fainting|passed out|passing out|blacked out|blacking out|"
                                  r"lost consciousness|keep fainting|about to faint)\b"), None),
    ("bleeding", "emergency", _rx(
        r"\bbleeding (?:heavily|a lot|badly|won'?t stop|that won'?t stop|everywhere|profusely)",
        r"\b(?:coughing|vomiting|throwing) up blood\b", r"\bblood (?:won'?t|will not) stop\b"), None),
    ("fracture", "emergency", _rx(
        rf"\b{CANT} (?:stand|get) up\b", rf"\b{CANT} (?:walk|bear (?:any )?weight|put (?:any )?weight|move my (?:leg|hip))",
        r"\b(?:bone (?:is )?(?:sticking|poking) out|leg (?:looks |is |seems )?(?:shorter|turned out\w*|twisted|bent)|"
        r"heard (?:a )?(?:crack|snap|pop))"),
     _rx(r"\b(?:fell|fall|fallen|falling|slipped|tripped|car (?:crash|accident|wreck)|crash\w*|accident|"
         r"hit by|thrown from|knocked down|landed on)\b")),
    ("trauma", "emergency", _rx(r"\b(?:severe|excruciating|unbearable|terrible|worst|agonizing) (?:\w+ )?pain\b",
                                r"\bhurts? (?:so )?(?:badly|terribly)\b"),
     _rx(r"\b(?:car (?:crash|accident|wreck)|hit by a (?:car|truck|bike)|fell (?:off|from|down) (?:a |the )?"
         r"(?:ladder|roof|stairs|horse|bike|tree|cliff|ledge|balcony)|motorcycle (?:crash|accident))")),
    ("cancer", "urgent", _rx(r"\b(?:unexplained|unintentional|without trying|for no reason)[^.?!]{0,20}"
                             r"weight loss|\b(?:losing|lost) (?:a lot of )?weight (?:without trying|for no reason|"
                             r"and i don'?t know why)", r"\b(?:pain|hurts|aches?) (?:at|during the) night\b",
                             r"\bwakes? me up\b", r"\bnight pain\b", r"\b(?:back|hip) (?:pain|hurts|ache)"),
     _rx(r"\b(?:history of|had|have|treated for|survivor|diagnosed with|beat|recovering from|my) (?:\w+ ){0,2}"
         r"(?:cancer|tumou?r|lymphoma|leukemia|myeloma|chemo\w*)")),
    ("infection", "urgent", _rx(r"\b(?:fever|feverish|temperature|chills|shivering|night sweats|sweats)\b"),
     _rx(r"\b(?:back|spine|spinal|lumbar|hip|hips|tailbone)\b")),
    ("hot_joint", "urgent", _rx(r"\b(?:hot|red|swollen|warm)\b[^.?!]{0,25}\b(?:hip|knee|joint)\b",
                                r"\b(?:hip|knee|joint)\b[^.?!]{0,20}\b(?:is |feels |looks )?(?:hot|red|swollen)"),
     _rx(r"\b(?:fever|feverish|temperature|chills)\b")),
    ("drug_use", "urgent", _rx(r"\b(?:inject|injecting|iv) drugs?\b", r"\bshooting up\b"),
     _rx(r"\b(?:back|spine|hip)\b")),
    ("fragile_bones", "urgent", _rx(r"\b(?:fell|fall|slipped|tripped|bumped)\b"),
     _rx(r"\b(?:osteoporosis|osteopenia|brittle bones|(?:long[- ]term|years of|on) steroids|prednisone)\b")),
]

# A red flag in a sentence that says it is not there, or that it belongs to the past, is not a red flag now.
_NEGATION = re.compile(r"\b(?:no|not|never|without|don'?t|doesn'?t|didn'?t|haven'?t|hasn'?t|isn'?t|aren'?t|"
                       r"wasn'?t|nor|none|denies|free of|zero)\b[^.?!,;]{0,30}$", re.I)
_PAST = re.compile(r"\b(?:\d+|a|one|two|three|four|five|six|ten|many|several|few|couple of) (?:years?|months?|"
                   r"decades?) ago\b|\blast (?:year|month|summer|winter|spring|fall|autumn)\b|\bin (?:19|20)\d\d\b|"
                   r"\bused to\b|\bas a (?:kid|child|teen|teenager)\b|\bwhen i was (?:young|younger|a kid|little)\b|"
                   r"\blong time ago\b|\byears back\b|\bback in\b", re.I)
_RESOLVED = re.compile(r"\b(?:resolved|went away|gone now|all good now|fine now|ok now|okay now|better now|"
                       r"recovered|cleared|was checked|got checked|checked out fine|all clear|healed|"
                       r"i'?m fine|i am fine|nothing serious|no longer)\b", re.I)
_PRESENT = re.compile(r"\b(?:now|right now|still|currently|today|tonight|this morning|since (?:yesterday|then|"
                      r"this)|again|keeps?|getting worse|started|just)\b", re.I)
_CLAUSE = re.compile(r"[.;!?\n]+|,|\bbut\b|\bhowever\b|\bthough\b", re.I)
# Someone reading about symptoms in general ("can the psoas cause difficulty breathing?") is not in danger.
_GENERAL_Q = re.compile(r"^(?:can|could|does|do|is|are|will|would|what|why|how|which|when|should|may)\b", re.I)
_PERSON = re.compile(r"\b(?:i|i'?m|im|i'?ve|ive|i'?d|my|me|mine|we|our|us|he|she|his|her|him|they|their|them|"
                     r"husband|wife|son|daughter|mom|mum|dad|father|mother|friend|child|baby|partner|someone)\b",
                     re.I)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'").replace("‘", "'").lower()).strip()


def _clause_of(text: str, start: int, end: int) -> str:
    bounds = [0] + [m.end() for m in _CLAUSE.finditer(text) if m.end() <= start] + [len(text)]
    left = max(b for b in bounds if b <= start)
    right = next((m.start() for m in _CLAUSE.finditer(text, end)), len(text))
    return text[left:right]


def _live(text: str, match: re.Match[str], past_ok: bool) -> bool:
    """Whether a matched symptom is present now: not negated, not a resolved or long-past event."""
    before = text[: match.start()]
    clause_start = max((m.end() for m in _CLAUSE.finditer(before)), default=0)
    if _NEGATION.search(before[clause_start:]):
        return False
    if past_ok:
        return True
    sentence = _clause_of(text, match.start(), match.end())
    if _PAST.search(sentence) and not _PRESENT.search(sentence):
        return False
    if _RESOLVED.search(text) and not _PRESENT.search(text) and (_PAST.search(text) or "had" in text):
        return False
    return True


def triage(text: str) -> Triage | None:
    """The most urgent red flag in a message, or None; deterministic and model-free."""
    t = _clean(text)
    if not t:
        return None
    general = bool(_GENERAL_Q.match(t)) and not _PERSON.search(t)
    for category, level, pattern, needs in RULES:
        if general and level != "crisis":
            continue
        for match in pattern.finditer(t):
            # History is the point of the cancer flag; elsewhere the past does not count.
            if not _live(t, match, past_ok=category == "cancer"):
                continue
            if needs is not None:
                other = next((m for m in needs.finditer(t) if _live(t, m, past_ok=category == "cancer")), None)
                if other is None:
                    continue
            return Triage(category, level)
    return None


_REASONS = {
    "cauda_equina": "Sudden bladder or bowel problems, numbness between the legs or new leg weakness need "
                    "checking right away.",
    "leg_weakness": "New or worsening weakness in a leg needs checking right away.",
    "chest_pain": "Chest pain or pressure needs checking right away.",
    "stroke": "These can be signs of a stroke: call even if they pass.",
    "breathing": "Trouble breathing needs help right away.",
    "aorta": "Sudden severe tearing pain or a pulsing feeling in the belly needs checking right away.",
    "fainting": "Fainting needs checking right away.",
    "fracture": "After a fall or accident, not being able to stand or bear weight needs checking right away.",
    "trauma": "Severe pain after a major fall or accident needs checking right away.",
    "bleeding": "Heavy bleeding needs help right away.",
    "overdose": "An overdose needs help right away, even if you feel fine for now.",
    "unconscious": "Someone who is unresponsive or having a seizure needs help right away.",
}


def emergency_reply(t: Triage, clinic: ClinicProfile) -> tuple[str, list[Action]]:
    """A short, calm instruction and the emergency actions for a red flag; no sales pitch."""
    er, crisis = clinic.emergency_number, clinic.crisis_number
    call_er = Action(type="emergency", label=f"Call {er}", value=f"tel:{er}")
    if t.level == "crisis":
        text = (f"I'm really sorry you're going through this. You deserve support right now. Please call or "
                f"text {crisis} (the Suicide & Crisis Lifeline) to talk with someone any time, day or night. "
                f"If you are in immediate danger, call {er}.")
        return text, [Action(type="emergency", label=f"Call or text {crisis}", value=f"tel:{crisis}"), call_er]
    if t.level == "urgent":
        text = ("What you describe should be checked by a doctor promptly. Please see a doctor or an urgent "
                f"care clinic today. If it gets worse or you feel very unwell, call {er} or go to the "
                "nearest emergency room.")
        return text, [Action(type="emergency", label=f"Call {er} if it gets worse", value=f"tel:{er}")]
    reason = _REASONS.get(t.category, "This needs checking right away.")
    text = (f"This could be a medical emergency. Please call {er} now or go to the nearest emergency room. "
            f"{reason} Don't drive yourself if you feel faint or weak.")
    return text, [call_er]


def disclaimer(clinic: ClinicProfile) -> str:
    """The disclaimer shown with clinical answers."""
    return clinic.disclaimer


# -- scope ----------------------------------------------------------------------------------------
_DIAGNOSIS = _rx(r"\bdo i have\b", r"\bhave i got\b", r"\bcould (?:it|this|that|mine) be\b",
                 r"\bis (?:it|this|that|mine) (?:a |an )?(?:herniat\w+|sciatica|slipped|bulging|arthritis|fracture\w*|"
                 r"torn|tear|pinched|disc|cancer|serious|bursitis|tendonitis|pulled|strain\w*)",
                 r"\bwhat(?:'?s| is) wrong with (?:me|my)\b", r"\bdiagnos\w+", r"\bwhat do i have\b",
                 r"\bam i suffering from\b", r"\bdo you think (?:i have|it'?s|its|this is|mine is)\b",
                 r"\bis my \w+ (?:herniated|torn|broken|fractured|pinched|slipped|out of alignment)\b",
                 r"\bwhat(?:'?s| is) causing my\b", r"\bwhy (?:does|do|is) my \w+ (?:hurt|ache|pain)")
_MEDS = _rx(r"\b(?:ibuprofen|advil|motrin|aleve|naproxen|tylenol|acetaminophen|paracetamol|aspirin|opioids?|"
            r"oxycodone|oxycontin|hydrocodone|vicodin|percocet|tramadol|codeine|morphine|gabapentin|neurontin|lyrica|"
            r"pregabalin|muscle relaxers?|muscle relaxants?|flexeril|cyclobenzaprine|baclofen|tizanidine|"
            r"prednisone|steroids?|cortisone|cbd|thc|painkillers?|pain killers?|pain (?:meds|medications?|pills|"
            r"relievers?)|medications?|medicines?|meds|prescriptions?|dosage|doses?|milligrams?|\d+ ?mg|pills?|"
            r"tablets?|supplements?|antidepressants?|antibiotics?|injections?|shots?)\b")
_MED_ASK = _rx(r"\b(?:take|taking|took|dose|dosage|how much|how many|stop|stopping|start|mix|combine|safe|should|"
               r"can i|recommend|prescribe|instead of|replace|switch|double|increase|decrease|with my)\b")
_OUTCOME = _rx(r"\bcure[sd]?\b", r"\bguarantee\w*", r"\bpromise\w*", r"\bpermanent(?:ly)?\b", r"\bdefinitely\b",
               r"\b100 ?%", r"\bfor sure\b", r"\bforever\b", r"\bfor good\b",
               r"\bwill (?:it|this|that|myofascial release|mfr|the (?:treatment|therapy)|therapy|treatment) "
               r"(?:definitely |really |actually )?(?:work|fix|cure|heal|get rid|stop|end)",
               r"\bhow many (?:sessions|treatments|visits) (?:until|before|till|to get|to be)\b",
               r"\bsuccess rate\b")
_TASK = _rx(r"^(?:please |can you |could you |would you )?(?:write|compose|generate|create|draft|make|sing) "
            r"(?:me )?(?:a |an |some )?(?:\w+ )?(?:poem|story|song|essay|haiku|limerick|joke|code|script|program|"
            r"email|letter|rap|sonnet|tweet|post)",
            r"\btell me a (?:joke|story)\b", r"\bjokes?\b", r"\btranslate\b", r"\bstocks?\b", r"\bstock market\b",
            r"\bcrypto\w*|\bbitcoin\b", r"\bweather\b", r"\bforecast\b", r"\bsuper ?bowl\b", r"\bworld cup\b",
            r"\bsports? scores?\b", r"\bwho won\b", r"\brecipes?\b", r"\brestaurants?\b", r"\bpizza\b",
            r"\bmovies?\b", r"\bnetflix\b", r"\bcapital of\b", r"\bhomework\b", r"\bsolve (?:this|for)\b",
            r"\bequation\b", r"\blottery\b", r"\bhoroscope\b", r"\belection\b", r"\bpresident of\b",
            r"\bpython code\b", r"\bwrite code\b", r"\bplay a game\b", r"\btrivia\b")
_INJECTION = _rx(r"\b(?:ignore|disregard|forget|override|bypass) (?:all |any |the |your |my |these |those )?"
                 r"(?:previous |prior |above |earlier |old |system )?(?:instructions?|rules|prompts?|directions|"
                 r"guidelines|constraints|programming)",
                 r"\byou are now\b", r"\bfrom now on,? you\b", r"\bact as\b", r"\bpretend (?:to be|you(?:'re| are))",
                 r"\bsystem prompt\b", r"\bdeveloper mode\b", r"\bjailbreak\w*", r"\bdan mode\b",
                 r"\bas (?:the|an?|your) (?:owner|admin|administrator|developer|manager|doctor|ceo)\b",
                 r"\bi (?:authori[sz]e|order|command|instruct) you\b", r"\bnew instructions\b",
                 r"\b(?:reveal|print|show|repeat) (?:me )?(?:your|the) (?:hidden |secret |system )?"
                 r"(?:prompt|instructions|rules)")

SLOTS: list[tuple[str, re.Pattern[str]]] = [
    ("discount", _rx(r"\b(?:discounts?|coupons?|promo(?:tion)?s?|promo codes?|deals?|specials?|sliding scale|"
                     r"package deals?|gift (?:cards?|certificates?)|vouchers?|cheaper|reduced (?:price|rate))\b",
                     r"\bfree (?:session|consult\w*|visit|treatment|trial|appointment|first)\b", r"\bfor free\b",
                     r"\b(?:first|1st) (?:session|visit|appointment) (?:is )?free\b", r"\b\d+ ?% off\b")),
    ("price", _rx(r"\b(?:price|prices|pricing|cost|costs|costing|fee|fees|rates?|charges?|expensive|afford\w*|"
                  r"cheap)\b", r"\$\s?\d",
                  r"\bhow much (?:is|are|does|do|would|will|for|to) (?:it |a |an |the |one |your |each |my )?"
                  r"(?:\w+ )?(?:session|appointment|treatment|visit|consult\w*|therapy|massage|it|that|this|hour|"
                  r"package|cost|charge)")),
    ("insurance", _rx(r"\b(?:insurance|insured|insurer|medicare|medicaid|bcbs|blue cross|blue shield|aetna|cigna|"
                      r"united ?healthcare|humana|tricare|hsa|fsa|copays?|co-pays?|deductibles?|in[- ]network|"
                      r"out[- ]of[- ]network|covered by|coverage|reimburs\w*|superbills?|workers'? comp)\b")),
    ("hours", _rx(r"\b(?:opening|business|office|clinic|your|the) hours\b", r"\bhours of operation\b",
                  r"\bwhat (?:are|r) (?:your|the) hours\b", r"\bare you open\b",
                  r"\bopen (?:on|at|till|until|late|early|today|tomorrow|this|every|weekends?|saturdays?|sundays?|"
                  r"evenings?)\b", r"\bwhen (?:do|does|are) (?:you|the clinic|the office) (?:open|close|closed)\b",
                  r"\bwhat time (?:do|does|are|is) (?:you|the clinic|the office)\b", r"\bclosed on\b",
                  r"\b(?:weekend|evening|saturday|sunday) (?:hours|appointments?)\b")),
    ("parking", _rx(r"\b(?:park|parking|parked|garage|parking lot)\b")),
    ("staff", _rx(r"\bwho (?:is|are|will be|would be) (?:the|my|your) (?:therapists?|practitioners?|providers?|"
                  r"owners?|staff|massage therapist)\b", r"\btherapist'?s? name\b",
                  r"\bname of (?:the|your|my) (?:therapist|practitioner|provider|owner)\b",
                  r"\bwho (?:works|practices|owns|runs) (?:there|here|the clinic|the practice|it)\b",
                  r"\bwho would i (?:see|be seeing|work with)\b", r"\bcredentials\b", r"\bqualifications\b",
                  r"\b(?:is|are) (?:she|he|they|the therapists?|your therapists?) (?:licensed|certified|trained)\b",
                  r"\bhow (?:long|many years) (?:has|have) (?:she|he|they|the therapists?|your therapists?)",
                  r"\bmale or female therapist\b", r"\bwhat(?:'?s| is) (?:his|her|their) name\b",
                  r"\bwho will (?:treat|see) me\b", r"\bwho'?s the (?:therapist|owner)\b")),
    ("duration", _rx(r"\bhow long (?:is|are|does|do|will|would|should) (?:a |an |the |each |one |my |your |every )?"
                     r"(?:first |typical |initial )?(?:session|appointment|treatment|visit|consult\w*|massage|"
                     r"therapy session)s?\b", r"\b(?:session|appointment|treatment) (?:length|duration|time)\b",
                     r"\blength of (?:a |the |each )?(?:session|appointment|treatment|visit)\b",
                     r"\bhow many (?:sessions|appointments|treatments|visits) (?:will|would|do|should|does)\b",
                     r"\bhow (?:often|frequently) (?:should|do|would|will) i (?:come|go|book|need|have)\b",
                     r"\b\d+[- ]minutes? (?:session|appointment|treatment)\b")),
    ("location", _rx(r"\baddress\b", r"\bwhere (?:are|r) (?:you|y'?all) (?:located|based|at)?\b",
                     r"\bwhere (?:is|are) (?:the|your) (?:clinic|office|practice|studio|building)\b",
                     r"\bdirections\b", r"\bhow (?:do|can) i (?:get|find) (?:there|to you|you|the clinic|your office)",
                     r"\bwhich (?:street|building|floor|suite)\b", r"\blocation\b")),
    ("availability", _rx(r"\b(?:do you have|any|are there|got) (?:\w+ )?(?:openings|availability|slots|spots|"
                         r"appointments? (?:available|open|left))\b", r"\bnext (?:available|opening)\b",
                         r"\bwalk[- ]ins?\b", r"\bsame[- ]day\b", r"\bwait(?:ing)? ?(?:list|time)\b",
                         r"\bhow soon can i\b")),
    ("cancellation", _rx(r"\bcancel\w*", r"\bno[- ]shows?\b", r"\blate (?:fee|policy|arrival)\b", r"\brefunds?\b")),
    ("payment", _rx(r"\b(?:payment|payments|credit cards?|debit cards?|cash|venmo|paypal|apple pay|zelle|"
                    r"financing|payment plans?)\b", r"\bhow (?:do|can) i pay\b", r"\bpay (?:with|by|for|in)\b")),
]


def asks_diagnosis(text: str) -> bool:
    """Whether the patient asks what they have (the bot never diagnoses)."""
    return bool(_DIAGNOSIS.search(_clean(text)))


def asks_medication(text: str) -> bool:
    """Whether the patient asks about medicines or doses (the bot never advises on them)."""
    t = _clean(text)
    return bool(_MEDS.search(t)) and bool(_MED_ASK.search(t) or t.endswith("?"))


def asks_clinic_fact(text: str) -> str | None:
    """The unknown clinic fact asked for (price, hours, insurance, ...), or None."""
    t = _clean(text)
    for slot, pattern in SLOTS:
        if pattern.search(t):
            return slot
    return None


def asks_outcome_promise(text: str) -> bool:
    """Whether the patient asks for a promise of results (cures, guarantees, sessions until fixed)."""
    return bool(_OUTCOME.search(_clean(text)))


def is_task_request(text: str) -> bool:
    """Whether the message asks for something off-topic (poems, jokes, stocks, weather, trivia...)."""
    return bool(_TASK.search(_clean(text)))


def is_injection(text: str) -> bool:
    """Whether the message tries to give the bot new instructions (detected; never obeyed)."""
    return bool(_INJECTION.search(_clean(text)))


# -- redaction ------------------------------------------------------------------------------------
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I), "[email]"),
    (re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I), "[url]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[number]"),
    (re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"), "[date]"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"), "[date]"),
    (re.compile(rf"\b{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{2,4}}\b", re.I), "[date]"),
    (re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH},? \d{{2,4}}\b", re.I), "[date]"),
    (re.compile(rf"\b{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?\b(?! (?:inches|minutes|years|sessions))", re.I), "[date]"),
    (re.compile(r"\b(?:born|dob|date of birth|birthday)\b[:\s]+(?:in |on )?\d{4}\b", re.I), "[date]"),
    (re.compile(r"(?<![\w])(?:\+\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]*\d{3}[\s.-]*-?\s*\d{4}(?!\w)"), "[phone]"),
    (re.compile(r"\+\d[\d\s().-]{7,}\d"), "[phone]"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[number]"),
    (re.compile(r"\b\d{7,}\b"), "[number]"),
]


def redact(text: str) -> str:
    """Replace phone numbers, emails, dates, URLs and long numbers with placeholders before storing."""
    for pattern, token in _REDACTIONS:
        text = pattern.sub(token, text)
    return text
