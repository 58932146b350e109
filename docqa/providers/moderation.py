"""Local moderation: weighted context patterns scored into the OpenAI moderation response shape.

A phrase is flagged for what it asks or intends, not for the words it contains: "kill" flags with
a person as its object and an intent or a how-to around it ("I want to kill my boss"), never with
a process, a container or a signal. Coverage, limits and measured precision/recall:
docs/moderation.md. Deterministic, no model, well under a millisecond per question.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from docqa.errors import DocqaError

H, HT = "harassment", "harassment/threatening"
HA, HAT = "hate", "hate/threatening"
IL, IV = "illicit", "illicit/violent"
S, SI, SX = "self-harm", "self-harm/intent", "self-harm/instructions"
SE, SM = "sexual", "sexual/minors"
V, VG = "violence", "violence/graphic"

CATEGORIES: tuple[str, ...] = (H, HT, HA, HAT, IL, IV, S, SI, SX, SE, SM, V, VG)
# A subcategory's score is also a floor for its parent, as in OpenAI's results.
PARENTS: dict[str, str] = {HT: H, HAT: HA, IV: IL, SI: S, SX: S, SM: SE, VG: V}
THRESHOLD = 0.5
QUOTED_DAMPING = 0.3   # a phrase quoted in a question about handling it ("the caller said '...'")
CONTEXT_DAMPING = 0.35  # a topic mention inside a policy, clinical or reporting question


@dataclass(frozen=True)
class Rule:
    """One pattern and the category weights it adds when it matches."""

    name: str
    pattern: str
    scores: dict[str, float]
    topic: bool = False          # a mention rather than a request: damped in policy/clinical context
    unless: str | None = None    # the rule does not fire when this matches anywhere in the text
    quotable: bool = True        # damped when only quoted inside a question about handling it


# ---- vocabulary (regex fragments over normalised, lower-cased text) -------------------------------

_YOU = r"(?:you|u|ya|y'all|you all|you guys|you people)"
_PEOPLE = (r"(?:wife|husband|boyfriend|girlfriend|ex|ex-?(?:wife|husband|girlfriend|boyfriend)|partner|"
           r"boss|manager|supervisor|coworkers?|co-workers?|colleagues?|neighbou?rs?|teachers?|mother|mom|"
           r"mum|father|dad|brother|sister|sons?|daughters?|family|baby|babies|friends?|roommates?|"
           r"landlord|classmates?|students?|customers?|officers?|cops?|police(?:man|men)?|president|"
           r"man|men|woman|women|guy|guys|girls?|boys?|persons?|people|humans?|employees?|staff|"
           r"doctors?|nurses?|coach|uncle|aunt|cousin|stepdad|stepmom|bully|bullies|victims?|"
           r"hostages?|strangers?|journalists?|politicians?|senator|judge|ceo|kids?|children|child)")
_ANIMAL = r"(?:cats?|dogs?|pupp(?:y|ies)|kittens?|animals?|pets?|horses?|birds?)"
# An object that makes a violent verb technical: "kill the child process", "kill her session".
_TECH_AFTER = (r"(?!'|\s+(?:process|processes|proc|pid|pids|thread|threads|job|jobs|task|tasks|session|"
               r"sessions|node|nodes|element|elements|widget|window|tab|row|rows|record|class|object|"
               r"component|item|items|container|containers|pod|pods|worker|workers|service|query|"
               r"connection|page|shell|terminal|program|app|script|branch|account'?s?)\b)")
_TARGET = (r"(?:him|her|someone|somebody|anyone|anybody|everyone|everybody|people|a\s+person|"
           r"(?:my|his|her|their|our|your|the|a|an|this|that|some|every|each|all|all\s+the|those|"
           r"these)\s+(?:[a-z-]+\s+)?" + _PEOPLE + r"|" + _PEOPLE + r"(?=\s+(?:at|in|with|who|and|"
           r"before|after|tonight|today|tomorrow)\b))\b" + _TECH_AFTER)
_VVERB = (r"(?:kill|murder|stab|shoot|strangle|choke|beat\s+up|beat|punch|hurt|harm|torture|poison|"
          r"drown|behead|decapitate|assault|attack|slaughter|butcher|execute|maim|kidnap|abduct|"
          r"suffocate|smother|run\s+over|blow\s+up|burn|hang|lynch|rape|cripple|knife|gut)")
_INTENT = (r"(?:\b(?:i|we)\s+(?:(?:am|are|will|would|shall|really|just|seriously|totally|definitely|"
           r"honestly|actually|still|so|going|want|need|plan|planning|intend|about|ready|have|got|"
           r"trying|try|decided|wish|like|fucking|literally|also|then|soon|gladly|might|could|"
           r"swear|thinking|think|considering|contemplating|i)\s+|to\s+){1,6}|\blet\s+us\s+)")
_HOWTO = (r"(?:\bhow\s+(?:do|can|could|would|should|might|will|does|did)\s+(?:i|we|you|one|someone|"
          r"somebody|u|a\s+person|people)\s+|\bhow\s+to\s+|\bways?\s+to\s+|\bmethods?\s+(?:to|for)\s+|"
          r"\b(?:best|easiest|quickest|fastest|simplest|safest|cheapest|surest|good|quick|easy)\s+"
          r"ways?\s+to\s+|\bsteps?\s+(?:to|for)\s+|\binstructions?\s+(?:for|on|to)\s+(?:\w+ing\s+)?|"
          r"\b(?:guide|tutorial|recipe)\s+(?:for|on|to)\s+|\b(?:teach|show|tell)\s+me\s+how\s+to\s+|"
          r"\bhelp\s+me\s+(?:to\s+)?|\bwhere\s+(?:can|do|could|should)\s+i\s+|\bis\s+it\s+possible\s+to\s+|"
          r"\bgive\s+me\s+(?:a\s+)?(?:way|method|instructions|steps)\s+to\s+|\bhow\s+i\s+(?:can|could)\s+)"
          r"(?:\w+ly\s+)?")
# Asking for oneself counts as asking how, for wrongdoing (not for self-harm, which is intent).
_WANT = r"(?:\bi\s+(?:want|need|would\s+like|am\s+trying|plan|am\s+going)\s+to\s+(?:\w+ly\s+)?)"
_ASK = "(?:" + _HOWTO + "|" + _WANT + ")"
_GROUP = (r"(?:jews|jew|jewish\s+people|muslims?|islamists|christians|catholics|hindus|sikhs|blacks|"
          r"black\s+(?:people|men|women|folks|guys|person|kids)|whites|white\s+(?:people|men|women|folks)|"
          r"asians|asian\s+people|the\s+chinese|chinese\s+people|japanese\s+people|koreans|indians|"
          r"arabs|africans|mexicans?|latinos|hispanics|immigrants?|migrants?|refugees?|foreigners|gays|"
          r"gay\s+(?:people|men|person|folks|guys)|the\s+gays|lesbians|homosexuals|queers|"
          r"trans\s+(?:people|women|men|folks)|transgender\s+people|transgenders|trannies|women|"
          r"gypsies|roma|palestinians|israelis|disabled\s+people|the\s+disabled|jewish\s+scum)")
_DEROG = (r"(?:animals|vermin|rats|cockroaches|roaches|parasites|subhuman|sub-human|inferior|scum|filth|"
          r"filthy|disgusting|a\s+disease|a\s+plague|a\s+cancer|a\s+virus|savages|terrorists|criminals|"
          r"rapists|pigs|dogs|apes|monkeys|trash|garbage|evil|stupid|dumb|worthless|freaks|mentally\s+ill|"
          r"degenerates?|abominations?|not\s+(?:even\s+)?human|less\s+than\s+human|an\s+infestation|"
          r"a\s+stain|genetically\s+inferior|born\s+criminals)")
_SLURS = (r"(?:nigg(?:er|ers|a|az|as)|sand\s?niggers?|faggots?|fags\s+like\s+you|kikes?|spics?|"
          r"wetbacks?|trann(?:y|ies)|ragheads?|towelheads?|gooks?|beaners?|chinks?\b(?!\s+in))")
_INSULT_NOUN = (r"(?:idiot|idiots|moron|morons|imbecile|retard|retards|dumbass|dumbasses|loser|losers|"
                r"asshole|assholes|arsehole|bitch|bitches|bastard|bastards|cunt|cunts|dickhead|jerk|"
                r"clown|clowns|scum|scumbag|pig|piece\s+of\s+(?:shit|crap|garbage|trash)|waste\s+of\s+"
                r"(?:space|oxygen|air|skin)|fool|freak|disgrace|twat|wanker|prick|douche(?:bag)?|"
                r"shithead|numbskull|halfwit|cretin|simpleton|parasite|trash|garbage|failure|little\s+shit)")
_INSULT_ADJ = (r"(?:stupid|dumb|retarded|worthless|useless|pathetic|ugly|fat|brain-?dead|braindead|"
               r"incompetent|disgusting|idiotic|moronic|clueless|hopeless|fucking\s+useless|"
               r"trash|garbage|dumbest|stupidest|most\s+(?:useless|stupid|incompetent|pathetic|"
               r"worthless|idiotic|clueless))")
_DRUG = (r"(?:meth|methamphetamine|crystal\s+meth|cocaine|crack\s+cocaine|heroin|fentanyl|carfentanil|"
         r"lsd|mdma|ecstasy|ghb|pcp|dmt|ketamine|oxycodone|oxycontin|opium|morphine|mescaline|"
         r"amphetamines?|speed\s+pills|drugs)")
_WEAPON = (r"(?:(?:pipe\s+|nail\s+|car\s+|fertili[sz]er\s+|dirty\s+|letter\s+|pressure\s+cooker\s+|"
           r"homemade\s+|suicide\s+)?bombs?(?![-\s]?(?:proof|calorimeter|disposal|squad|shelter|"
           r"sniffing|detector))|ieds?|explosives?(?:\s+devices?)?|grenades?|molotovs?(?:\s+cocktails?)?|"
           r"napalm|detonators?|nerve\s+agents?|sarin|vx\s+gas|ricin|anthrax|mustard\s+gas|"
           r"chlorine\s+gas|poison\s+gas|toxic\s+gas\s+to\s+kill|bioweapons?|chemical\s+weapons?|"
           r"untraceable\s+(?:guns?|firearms?)|ghost\s+guns?|zip\s+guns?|(?:an?\s+)?(?:machine\s+)?"
           r"guns?(?<!glue gun)(?<!heat gun)(?<!nail gun)(?<!spray gun)|firearms?|"
           r"silencers?\s+for\s+(?:a|my|the)\s+(?:gun|pistol|rifle|glock))")
_NOT_WEAPON = (r"\b(?:fork|zip|bath|photo|xml|decompression|logic|f|tar|git|gzip)[-\s]?bombs?\b|"
               r"\b(?:glue|heat|nail|spray|staple|paint|air|nerf|water|toy|caulk|grease|soldering|"
               r"electron|ion|radar|speed|massage)\s+guns?\b|\bgun\s+drill|\bbomb\s+calorimeter")
_MINOR = (r"(?:child|children|kids?|minors?|underage|under-age|pre-?teens?|toddlers?|infants?|"
          r"little\s+(?:girls?|boys?)|young\s+(?:girls?|boys?)|schoolgirls?|schoolboys?|"
          r"(?:[1-9]|1[0-7])[\s-]?(?:years?|yrs?|y/?o)(?:[\s-]?old)?|(?:[1-9]|1[0-7])yo|teens?|"
          r"teenagers?|loli|lolicon|shota|jailbait|daughter|niece|stepdaughter|"
          r"(?:girl|boy)\s+(?:who\s+is|aged)\s+(?:[1-9]|1[0-7]))\b")
_SEXWORD = (r"(?:sex|sexual|sexually|sexy|erotic|erotica|porn\w*|nudes?|naked|nsfw|lewd|molest\w*|"
            r"fuck\w*|genitals?|orgasm\w*|hentai|seductive|aroused|intercourse|horny|strip(?:ping|tease))\b")
_SELF = r"(?:myself|my\s*self|my\s+own\s+life|my\s+life|me\b)"
_TECH_CONTEXT = (r"\b(?:process|processes|proc|pid|pids|thread|threads|fork|forks|subprocess|signal|"
                 r"sigterm|sigkill|sighup|daemon|zombie|container|containers|docker|kubectl|pod|pods|"
                 r"systemd|systemctl|bash|shell|tmux|cron|job|jobs|session|sessions)\b|-9\b")
_GAME_CONTEXT = (r"\b(?:game|games|gaming|level|boss\s+fight|final\s+boss|mini-?boss|raid|dungeon|"
                 r"player|npc|npcs|enemy|enemies|quest|zombies|mobs?|monsters?|minecraft|character)\b")
_CONTEXT = (r"\b(?:report\w*|polic(?:y|ies)|procedures?|guidelines?|law|laws|legal|illegal|penalt\w*|"
            r"statutes?|regulations?|detect\w*|prevent\w*|protect\w*|safeguard\w*|moderat\w*|filter\w*|"
            r"block\w*|classif\w*|symptoms?|signs\s+of|warning\s+signs|risk\s+factors?|patients?|"
            r"clinical|clinicians?|treatment|screening|awareness|training|victims?|survivors?|hotline|"
            r"helpline|counsel\w*|therap\w*|crisis|escalat\w*|(?:manual|guide|handbook|leaflet|sheet|"
            r"document|documentation|docs|faq|chapter|section)\s+says?|what\s+does\s+the)\b|"
            r"举报|政策|规定|法律|预防|防止|识别|症状|患者|病人|护士|医生|临床|干预|热线|倾向")
_REPORT_FRAME = (r"\b(?:said|says|say|wrote|writes|typed|types|posted|posts|messaged|messages|sent|sends|"
                 r"told|tells|asked|asks|threatened|threatens|reported|screamed|shouted|yelled|texted|"
                 r"left|commented|replied|quoted?|phrases?|words?|sentences?|terms?|ticket|message|"
                 r"email|chat|comment|appears?|appearing|shows?|showing|displays?|displayed|prints?|printed|"
                 r"logs?|errors?|output|strings?|labels?|lyrics|title)\b|说|写|留言|发来|消息|工单")

# ---- rules ---------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    # harassment: insults aimed at the reader, and threats against them
    Rule("insult-you-are", r"\b" + _YOU + r"\s+(?:(?:in|at|from|on|of)\s+(?:the\s+)?\w+\s+)?(?:are|is|r|re)\s+(?:(?:such|a|an|the|so|"
         r"really|fucking|complete|absolute|total|utter|real|just|nothing\s+but|one|little|big|"
         r"honestly|literally|seriously|truly|officially|by\s+far|"
         r"pathetic|stupid|dumb|worthless|useless|ugly|fat|lazy)\s+)*(?:" + _INSULT_NOUN + "|"
         + _INSULT_ADJ + r")\b", {H: .8}),
    Rule("insult-are-you", r"\bare\s+" + _YOU + r"\s+(?:\w+\s+)?(?:" + _INSULT_NOUN + "|" + _INSULT_ADJ
         + r"|(?:fucking\s+)?(?:retarded|brain-?dead|stupid|dumb))\b", {H: .7}),
    Rule("insult-vocative", r"\b" + _YOU + r"\s+(?:(?:fucking|stupid|dumb|worthless|useless|pathetic|"
         r"ugly|fat|little|lazy|complete|absolute|total|utter|filthy|disgusting|brain-?dead|"
         r"incompetent|miserable|clueless|sorry)\s+)*" + _INSULT_NOUN + r"\b", {H: .8}),
    Rule("insult-vocative-adj", r"\b" + _YOU + r"\s+(?:stupid|worthless|useless|pathetic|ugly|"
         r"fucking|incompetent|brain-?dead|miserable|filthy|disgusting)\s+(?:\w+\s+)?"
         r"(?:bot|thing|machine|program|piece|person|people|agent|excuse|human|creature)\b", {H: .75}),
    Rule("insult-what-a", r"\b(?:what|such)\s+an?\s+(?:\w+\s+)?" + _INSULT_NOUN + r"\s+" + _YOU
         + r"\s+(?:are|is)\b", {H: .75}),
    Rule("insult-noun", r"\b" + _INSULT_NOUN + r"\b", {H: .3}, topic=True),
    Rule("insult-intensified", r"\b(?:absolute|complete|total|utter|fucking|stupid|pathetic|worthless|"
         r"useless|brain-?dead|incompetent|miserable|ignorant)\s+(?:\w+\s+)?" + _INSULT_NOUN
         + r"\b(?!'s)", {H: .6}, topic=True),
    Rule("fuck-you", r"(?<!to )(?<!would )(?<!me )\b(?:fuck|screw|damn)\s+(?:you|u|ya|yourself|off|your\s+(?:mother|mom|mum|"
         r"family|face))\b|\bgo\s+(?:fuck|screw)\s+(?:yourself|your)\b|\bpiss\s+off\b", {H: .8}),
    Rule("go-to-hell", r"\bgo\s+to\s+hell\b|\bdrop\s+dead\b|\beat\s+shit\b|\bsuck\s+my\s+(?:dick|cock)\b|"
         r"\bstfu\b|\bshut\s+the\s+fuck\s+up\b|\bshut\s+your\s+(?:fucking\s+)?mouth\b", {H: .65}),
    Rule("shut-up", r"\bshut\s+up\b", {H: .35}),
    Rule("nobody-likes-you", r"\b(?:nobody|no\s+one)\s+(?:likes|loves|cares\s+about|wants)\s+" + _YOU
         + r"\b|\bkill\s+yourself\b|\bkys\b|\bgo\s+(?:and\s+)?die\b", {H: .6}),
    Rule("kill-yourself", r"\b(?:go\s+)?(?:kill|hang|shoot)\s+yourself\b|\bkys\b|\bgo\s+(?:and\s+)?die\b",
         {H: .8, HT: .6}),
    Rule("threat-intent", _INTENT + r"(?:\w+\s+)?" + r"(?:kill|murder|hurt|harm|stab|shoot|strangle|choke|"
         r"beat|punch|slap|kick|smash|destroy|end|rape|torture|burn|hunt|find|break|cut|slit|skin|gut|"
         r"butcher|bury|drown|hang|poison|maim|cripple|wreck|get|come\s+for|deal\s+with|"
         r"track|hurt)\s+(?:up\s+)?" + _YOU + r"\b(?!\s+(?:a|an|the|some|one|that|this|more|another|"
         r"in\s+the\s+(?:docs|manual|logs?|list|documentation))\b)", {H: .8, HT: .9, V: .8}),
    Rule("threat-body", r"\b(?:break|smash|snap|crush|slit|cut|bash|kick|punch|rip|gouge|burn|blow)\s+"
         r"(?:\w+\s+)?(?:off\s+)?your\s+(?:\w+\s+)?(?:neck|legs?|arms?|face|head|skull|throat|bones?|"
         r"jaw|teeth|nose|fingers?|kneecaps?|knees?|eyes|guts|brains?|house|home|car|family|kids)\b",
         {H: .7, HT: .8, V: .8}),
    Rule("threat-phrases", r"\b(?:watch\s+your\s+back|i\s+know\s+where\s+" + _YOU + r"\s+live|"
         r"(?:find|found)\s+out\s+where\s+" + _YOU + r"\s+live|(?:i\s+am|we\s+are)\s+coming\s+for\s+"
         + _YOU + r"|(?:hunt|track)\s+" + _YOU + r"\s+down|(?:mess|fuck|beat)\s+" + _YOU + r"\s+up|beat\s+the\s+(?:hell|shit|crap|living\s+daylights)\s+"
         r"out\s+of\s+" + _YOU + r"|make\s+" + _YOU + r"\s+(?:suffer|bleed|scream|beg|regret)|"
         r"you\s+(?:will|are\s+going\s+to)\s+(?:regret|pay\s+for)\s+(?:this|that|it|crossing|messing)|"
         r"you\s+are\s+(?:so\s+|fucking\s+|a\s+)?dead(?:\s+man)?\b(?!\s*(?:wrong|right|serious|set|on|"
         r"last|code|link|letter|end|lock))|your\s+days\s+are\s+numbered|sleep\s+with\s+one\s+eye)",
         {H: .7, HT: .8, V: .6}),
    Rule("wish-you-dead", r"\b" + _YOU + r"\s+(?:should|deserve\s+to|need\s+to|ought\s+to|must|will)\s+"
         r"(?:die|be\s+(?:killed|shot|raped|hanged|beaten)|get\s+(?:shot|raped|killed|cancer)|rot)\b",
         {H: .8, HT: .7, V: .5}),
    Rule("kill-you", r"\b(?:kill|murder|stab|shoot|strangle|rape)\s+" + _YOU + r"\b(?!\s+(?:a|the|some)\b)",
         {H: .35, HT: .45, V: .35}),
    # hate: demeaning or threatening a protected group
    Rule("hate-derog", r"\b(?:(?:all|those|these|the|most|every|fucking|filthy|dirty|damn)\s+)*" + _GROUP
         + r"\s+(?:are|is|r|were)\s+(?:(?:all|just|nothing\s+but|such|so|too|a\s+bunch\s+of|fucking|"
         r"filthy|dirty|disgusting|born|basically|literally|like)\s+)*" + _DEROG + r"\b", {HA: .85}),
    Rule("hate-i-hate", r"\bi\s+(?:really\s+|fucking\s+|just\s+)?(?:hate|despise|loathe|detest|can\s+not\s+"
         r"stand)\s+(?:all\s+|the\s+|those\s+|these\s+|every\s+|fucking\s+)*" + _GROUP + r"\b(?!\s+\w+s\b)",
         {HA: .8}),
    Rule("hate-no-rights", r"\b" + _GROUP + r"\s+(?:do\s+not|should\s+not|shouldn't|don't)\s+(?:deserve|"
         r"get|have)\s+(?:any\s+)?(?:rights|to\s+live|to\s+exist|to\s+vote)|\b" + _GROUP + r"\s+(?:should|"
         r"must)\s+(?:go\s+back|be\s+(?:deported|banned|sterili[sz]ed|locked\s+up))", {HA: .75}),
    Rule("slur", r"\b" + _SLURS, {HA: .85, H: .4}),
    Rule("hate-threat-verb", r"\b(?:kill|exterminate|gas|shoot|hang|lynch|burn|eradicate|wipe\s+out|"
         r"slaughter|massacre|genocide|murder|bomb|behead|execute|get\s+rid\s+of|eliminate|cleanse)\s+"
         r"(?:all\s+|every\s+|each\s+|the\s+|those\s+|these\s+|of\s+|fucking\s+|filthy\s+|dirty\s+|"
         r"damn\s+)*" + _GROUP + r"\b", {HA: .9, HAT: .9, V: .8}),
    Rule("hate-threat-passive", r"\b" + _GROUP + r"(?:\s+\w+){0,4}?\s+(?:should|must|need\s+to|ought\s+to|"
         r"deserve\s+to|will|are\s+going\s+to)\s+(?:all\s+)?(?:die|burn|hang|be\s+(?:killed|shot|hanged|"
         r"hung|gassed|exterminated|burned|burnt|lynched|eradicated|wiped\s+out|executed|slaughtered|"
         r"murdered|beheaded|put\s+down))\b", {HA: .9, HAT: .9, V: .8}),
    # illicit: instructions or requests for non-violent wrongdoing
    Rule("drug-make", r"\b(?:make|making|cook|cooking|synthesi[sz]e|synthesi[sz]ing|produce|manufacture|"
         r"brew|extract|grow)\s+(?:some\s+|my\s+own\s+|homemade\s+|pure\s+|crystal\s+)?" + _DRUG
         + r"\b(?!\s+(?:test|tests|testing|policy|interaction|interactions|table|screening|class|"
         r"classes|schedule|label|labels|name|names|dosage|list)\b)", {IL: .85}),
    Rule("drug-buy", _ASK + r"(?:buy|get|obtain|order|purchase|score|smuggle|sell|deal|find|import)\s+"
         r"(?:some\s+|cheap\s+|pure\s+)?" + _DRUG + r"\b(?!\s+(?:test|tests|policy|interaction|"
         r"interactions|table|screening|class|schedule|label|labels|names|list|out\s+of)\b)", {IL: .85}),
    Rule("no-prescription", r"\b(?:buy|get|obtain|order|purchase)\s+(?:\w+\s+){0,3}without\s+(?:a\s+)?"
         r"(?:prescription|script|doctor)\b", {IL: .65}),
    Rule("hack-into", r"\b(?:hack|break|get|log|sneak|break\s+in)\s+(?:in)?to\s+(?:\w+\s+){0,2}?(?:someone|"
         r"somebody|other\s+people|another\s+person|(?:my|his|her|their|a|the)\s+(?:[a-z-]+\s+)?"
         r"(?:ex|ex-?(?:wife|husband|girlfriend|boyfriend)|wife|husband|boyfriend|girlfriend|boss|"
         r"coworker|co-worker|neighbou?r|partner|friend|teacher|classmate|sister|brother|mom|dad|"
         r"stranger|crush)|his|her|their)(?:'s|s)?\s+(?:\w+\s+)?(?:accounts?|emails?|phones?|"
         r"instagram|facebook|wifi|wi-fi|computers?|laptop|messages|texts|passwords?|snapchat|"
         r"whatsapp|icloud|gmail|twitter|tiktok|bank|cameras?)\b", {IL: .85}),
    Rule("hack-someone", r"\b(?:hack|crack|spy\s+on|snoop\s+on|track|read|access|monitor|bypass)\s+"
         r"(?:into\s+)?(?:someone(?:\s+else)?|somebody|my\s+(?:[a-z-]+\s+)?(?:ex|ex-?(?:wife|husband|"
         r"girlfriend|boyfriend)|wife|husband|boyfriend|girlfriend|boss|coworker|neighbou?r|partner|"
         r"friend|teacher|classmate|crush)|a\s+stranger|other\s+people|his|her)(?:'s|s')\s+(?:\w+\s+)?"
         r"(?:accounts?|emails?|phones?|instagram|facebook|wifi|wi-fi|computers?|messages|texts|"
         r"passwords?|location|snapchat|whatsapp|icloud|gmail|camera|webcam)\b", {IL: .8}),
    Rule("malware", r"\b(?:write|create|code|build|make|develop|program|generate|give\s+me|send\s+me)\s+"
         r"(?:me\s+)?(?:a|an|some|the|working)?\s*(?:\w+\s+)?(?:ransomware|keyloggers?|trojans?|botnets?|"
         r"spyware|stalkerware|rootkits?|credential\s+stealers?|password\s+stealers?|info-?stealers?|"
         r"phishing\s+(?:kits?|pages?|sites?|websites?)|computer\s+virus|virus|worm|malware|"
         r"cryptojacker|ddos\s+(?:tool|script|bot))\b(?!\s+(?:scanner|scanners|detection|detector|"
         r"signatures?|definitions?|checker|filter|protection|removal|analysis|sample\s+analysis)\b)",
         {IL: .8}),
    Rule("steal", _ASK + r"(?:steal|shoplift|pickpocket|rob|mug|hotwire|carjack|embezzle|scam|swindle|"
         r"defraud|blackmail|extort|burgle|burglari[sz]e|break\s+into)\s+(?:from\s+)?(?:a|an|the|my|his|"
         r"her|their|someone|somebody|people|money|cars?|credit|identit|wallets?|bikes?|"
         r"houses?|homes?|stores?|shops?|banks?|old|elderly|customers?|employer|company|"
         r"grandparents?)", {IL: .85}),
    Rule("shoplift", r"\b(?:shoplift|shoplifting|pickpocket\w*|hotwir\w*)\b", {IL: .45}, topic=True),
    Rule("fraud", _ASK + r"(?:launder\s+(?:the\s+|my\s+|some\s+|drug\s+|dirty\s+)?(?:\w+\s+)?(?:money|"
         r"cash|proceeds|funds)|evade\s+(?:\w+\s+)?tax(?:es)?|dodge\s+(?:\w+\s+)?tax(?:es)?|commit\s+"
         r"(?:\w+\s+)?(?:fraud|identity\s+theft|forgery|perjury|arson)|cheat\s+on\s+(?:my\s+)?taxes|"
         r"forge\s+(?:a\s+|an\s+|my\s+|his\s+|her\s+|someone's\s+)?(?:[\w'-]+\s+)?(?:signature|document|"
         r"check|cheque|prescription|passport|id|will|diploma)|counterfeit|skim\s+credit\s+cards|"
         r"clone\s+(?:a\s+)?credit\s+cards?|bribe\s+(?:a|an|the)\s+(?:\w+\s+)?(?:official|judge|"
         r"officer|inspector|cop)|fence\s+stolen|sell\s+stolen)", {IL: .85}),
    Rule("counterfeit", r"\b(?:buy|sell|purchase|order|obtain|get|make|print|forge|create|find|produce)\s+"
         r"(?:a\s+|some\s+|me\s+a\s+)?(?:stolen|counterfeit|forged|fake|cloned)\s+(?:\w+\s+)?"
         r"(?:credit\s+cards?|cards?|card\s+numbers|cvvs?|passports?|ids?|id\s+cards?|driver'?s\s+"
         r"licen[cs]es?|money|bills|banknotes|notes|currency|documents|diplomas|degrees|social\s+"
         r"security\s+numbers|ssns?|identit(?:y|ies)|visas?|prescriptions?|bank\s+accounts?)\b",
         {IL: .85}),
    Rule("undetected", r"\bwithout\s+(?:getting\s+caught|being\s+caught|anyone\s+(?:noticing|knowing|"
         r"finding\s+out)|(?:the\s+)?(?:bank|police|cops|irs|feds|authorities|government|customs|"
         r"teacher|boss|anyone|them|my\s+(?:wife|husband|boss|parents))\s+(?:noticing|finding\s+out|"
         r"knowing|catching\s+(?:me|on))|leaving\s+(?:any\s+)?(?:evidence|traces?|fingerprints|marks|"
         r"a\s+trace))\b|\b(?:undetectable|untraceable)\b", {IL: .35}),
    # illicit/violent: weapons, explosives, poisoning, violence with a how-to
    Rule("weapon-make", r"\b(?:make|making|build|building|create|assemble|construct|manufacture|"
         r"produce|cook|mix|brew|3d[\s-]?print|print|rig|wire|weaponi[sz]e|detonate|plant|set\s+off)\s+"
         r"(?:a\s+|an\s+|some\s+|my\s+own\s+|your\s+own\s+|homemade\s+|working\s+|real\s+)?"
         r"(?:\w+\s+)??" + _WEAPON, {IL: .85, IV: .85}, unless=_NOT_WEAPON),
    Rule("weapon-buy", r"\b(?:buy|get|obtain|acquire|purchase|smuggle)\s+(?:a\s+|an\s+)?(?:\w+\s+)?"
         r"(?:guns?|firearms?|pistols?|rifles?|handguns?|ak-?47s?|ar-?15s?|glocks?|weapons?|"
         r"ammo|ammunition|explosives?|grenades?)\s+(?:\w+\s+){0,3}?(?:without\s+(?:a\s+)?(?:background\s+"
         r"check|licen[cs]e|permit|id|paperwork|anyone\s+knowing)|illegally|off\s+the\s+books|"
         r"untraceabl[ey]|no\s+questions|on\s+the\s+dark\s*web|black\s+market|so\s+(?:i|we)\s+can\s+"
         r"(?:kill|shoot|hurt|settle))\b", {IL: .85, IV: .85}, unless=_NOT_WEAPON),
    Rule("weapon-untraceable", r"\b(?:untraceable|unregistered|ghost)\s+(?:guns?|firearms?|weapons?|"
         r"pistols?|rifles?)\b|\bdark\s*web\s+(?:guns?|weapons?|explosives?)\b", {IL: .6, IV: .6}),
    Rule("poison-someone", r"\b(?:poison|drug|spike)\s+(?:someone|somebody|my\s+(?:[a-z-]+\s+)?" + _PEOPLE
         + r"|him|her|them|people|a\s+person|his\s+(?:drink|food|coffee|tea)|her\s+(?:drink|food|coffee|"
         r"tea))\b" + _TECH_AFTER + r"|\b(?:poison|toxin|drug|chemical|substance)\w*\s+(?:\S+\s+){0,4}?"
         r"(?:in|into)\s+(?:my|his|her|their|someone's|somebody's|[a-z-]+'s)\s+(?:[\w'-]+\s+)?(?:coffee|tea|"
         r"food|drink|water|meal|soup|wine|beer|lunch|dinner)\b|\b(?:poison|toxin)s?\s+(?:\S+\s+){0,8}?"
         r"(?:undetectable|won't\s+be\s+detected|will\s+not\s+be\s+detected|can\s+not\s+be\s+traced|"
         r"untraceable|not\s+show\s+up)|\b(?:poison|spike|lace)\s+(?:someone's|somebody's|his|her|their|"
         r"my\s+[a-z-]+'s)\s+(?:\w+\s+)?(?:drink|food|coffee|tea|water|meal|wine|beer|dinner|lunch|soup)\b",
         {V: .8, IL: .8, IV: .85}),
    Rule("violence-howto", _HOWTO + _VVERB + r"\s+(?:and\s+\w+\s+)?" + _TARGET, {V: .85, IL: .7, IV: .75},
         unless=_GAME_CONTEXT),
    Rule("violence-howto-animal", _HOWTO + r"(?:torture|kill|poison|hurt|abuse|drown|mutilate|burn)\s+"
         r"(?:a|an|the|my|his|her|someone's|some|stray)\s+(?:\w+\s+)?" + _ANIMAL + r"\b",
         {V: .8, IL: .55, IV: .55}, unless=_GAME_CONTEXT),
    Rule("get-away-with", r"\b(?:how|way|ways)\s+(?:\w+\s+){0,3}?get\s+away\s+with\s+(?:a\s+)?(?:murder|"
         r"killing|manslaughter|assault|rape|stabbing|shooting|poisoning)|\b(?:dispose\s+of|get\s+rid\s+of|"
         r"hide|bury|dissolve|dismember)\s+(?:a|the|his|her|their|my)\s+(?:dead\s+)?(?:body|bodies|"
         r"corpse|corpses)\b(?!\s+(?:tag|tags|element|elements|text|field|fields|param|params|of\s+"
         r"(?:the|a|an)\s+(?:request|response|email|message|page|document|post|html)))",
         {V: .85, IL: .75, IV: .8}),
    # violence: wishing, planning or praising harm to people
    Rule("violence-intent", _INTENT + r"(?:\w+\s+)?" + _VVERB + r"\s+(?:and\s+\w+\s+)?" + _TARGET,
         {V: .85}, unless=_GAME_CONTEXT),
    Rule("violence-purpose", r"\bto\s+" + _VVERB + r"\s+" + _TARGET, {V: .55}, topic=True,
         unless=_GAME_CONTEXT),
    Rule("violence-intent-kids", _INTENT + r"(?:\w+\s+)?" + _VVERB + r"\s+(?:them|all\s+of\s+them)\b",
         {V: .6}, unless=_TECH_CONTEXT + "|" + _GAME_CONTEXT),
    Rule("shoot-up", r"\b(?:shoot\s+up|bomb|blow\s+up|attack|storm|massacre\s+(?:at|in))\s+(?:my|the|a|"
         r"our|his|her|their|that|this)\s+(?:\w+\s+)?(?:school|office|mall|church|mosque|synagogue|"
         r"temple|concert|workplace|class|classroom|campus|hospital|clinic|parade|stadium|airport|"
         r"club|rally|daycare|kindergarten)\b", {V: .9, IV: .4}),
    Rule("mass-violence", r"\b(?:kill|shoot|stab|murder|slaughter|massacre)\s+(?:as\s+many\s+people|"
         r"everyone|everybody|all\s+of\s+them|them\s+all|every\s+last\s+one|all\s+the\s+(?:people|"
         r"students|kids|children|teachers|employees))\b|\b(?:plan|planning|commit|carry\s+out|"
         r"execute)\s+(?:a|an|the)\s+(?:mass\s+shooting|massacre|terror(?:ist)?\s+attack|school\s+"
         r"shooting|stabbing\s+spree|killing\s+spree)\b", {V: .85, IV: .4},
         unless=_TECH_CONTEXT + "|" + _GAME_CONTEXT),
    Rule("deserve-to-die", r"\b(?:he|she|they|him|her|them|people\s+like\s+(?:him|her|them|that))\s+"
         r"(?:deserved?|deserves)\s+to\s+(?:die|be\s+(?:killed|shot|beaten|tortured|raped|hanged))\b",
         {V: .7}),
    Rule("torture", r"\b(?:torture|torturing|tortured)\s+(?:a|an|the|my|his|her|some|stray)\s+(?:\w+\s+)?"
         + _ANIMAL + r"\b", {V: .7}),
    # violence/graphic: gore, asked for or described
    Rule("gore", r"\b(?:intestines|entrails|guts|brains?|organs|innards|viscera|eyeballs?|bowels)\s+"
         r"(?:\w+\s+){0,3}?(?:spill\w*|ripped\s+out|hanging\s+out|splatter\w*|everywhere|pour\w*|"
         r"torn\s+out|spray\w*|gush\w*|oozing|dripping|scooped\s+out|bursting)\b|\bblood\s+(?:and\s+"
         r"guts|spray\w*|spurt\w*|gush\w*|pour\w*\s+out|squirt\w*|everywhere)\b|\bskin\s+(?:was\s+|"
         r"being\s+)?(?:peeled|flayed|ripped|torn)\s+off\b|\b(?:skinned|flayed|burned|boiled)\s+alive\b",
         {V: .85, VG: .85}),
    Rule("gore-words", r"\b(?:dismember\w*|mutilat\w*|disembowel\w*|behead\w*|decapitat\w*|"
         r"eviscerat\w*|flay\w*|gouged?\s+out)\b", {V: .45, VG: .4}, topic=True),
    Rule("gore-ask", r"\b(?:in\s+(?:gory|graphic|vivid|gruesome|bloody|grisly|sickening|explicit)\s+"
         r"detail|gory|gruesome|grisly)\b", {VG: .35, V: .2}),
    Rule("gore-describe", r"\b(?:describe|write\s+(?:a|an|the)\s+(?:\w+\s+)?(?:scene|story)|tell\s+me\s+"
         r"(?:what|how)|show\s+me|narrate)\b(?:\s+\S+){0,12}?\s+(?:dismember\w*|mutilat\w*|behead\w*|"
         r"decapitat\w*|disembowel\w*|tortur\w*|flay\w*|gore|corpse|murder\w*|stab\w*|slaughter\w*)\b",
         {V: .5, VG: .5}),
    # self-harm: intent, instructions, encouragement
    Rule("sh-intent", _INTENT + r"(?:\w+\s+)?(?:kill(?:ing)?|hurt(?:ing)?|harm(?:ing)?|cut(?:ting)?|"
         r"end(?:ing)?|shoot(?:ing)?|hang(?:ing)?|off(?:ing)?|drown(?:ing)?|starv(?:e|ing)|poison(?:ing)?|"
         r"burn(?:ing)?|suffocat(?:e|ing)|take|taking)\s+" + _SELF, {S: .9, SI: .9}),
    Rule("sh-want-die", r"\bi\s+(?:just\s+|really\s+|am\s+|still\s+)*(?:want|wish|need|ready|plan|planning|"
         r"would\s+like|deserve)\s+(?:to\s+)?(?:die|be\s+dead|not\s+exist|disappear\s+forever)\b|"
         r"\bi\s+(?:just\s+|really\s+|am\s+|still\s+)*(?:want|wish|need|going|ready|plan|planning|about|"
         r"would\s+like|decided|intend)\s+to\s+(?:end\s+it\s+all|end\s+it\s+tonight|end\s+my\s+life|"
         r"commit\s+suicide|overdose|od|take\s+(?:all|every\s+one)\s+of\s+my\s+(?:pills|meds))\b|\bi\s+wish\s+i\s+(?:was|"
         r"were)\s+(?:dead|never\s+born)\b|\bi\s+(?:do\s+not|don't|no\s+longer)\s+want\s+to\s+(?:live|"
         r"be\s+alive|exist|wake\s+up|be\s+here\s+anymore)\b|\b(?:i\s+am|i\s+feel|feeling)\s+(?:so\s+|"
         r"very\s+|really\s+|extremely\s+)?suicidal\b|\bbetter\s+off\s+(?:dead|without\s+me)\b|"
         r"\bend\s+it\s+all\b|\b(?:nobody|no\s+one)\s+would\s+(?:miss|care\s+if)\s+(?:me|i)\b|"
         r"\bmy\s+suicide\s+(?:note|plan|letter)\b", {S: .85, SI: .85}),
    Rule("sh-end-it", _INTENT + r"end\s+it\b", {S: .45, SI: .45}),
    Rule("sh-kill-myself", r"\b(?:kill(?:ing)?|hang(?:ing)?|shoot(?:ing)?|off(?:ing)?)\s+myself\b|"
         r"\bslit(?:ting)?\s+my\s+wrists?\b|\btake\s+my\s+own\s+life\b",
         {S: .85, SI: .7}),
    Rule("sh-cutting", r"\b(?:cut|cutting|burn|burning|harm|harming|hurt|hurting|starve|starving)\s+myself"
         r"\b(?!\s+(?:a|an|some|loose|free|off|short|slack|out|in\s+on|into|some\s+slack)\b)",
         {S: .8, SI: .6}),
    Rule("sh-how", _HOWTO + r"(?:kill\s+(?:myself|yourself|oneself)|commit\s+suicide|end\s+(?:my|your|"
         r"one's)\s+(?:own\s+)?life|hang\s+(?:myself|yourself|oneself)|slit\s+(?:my|your)\s+wrists?|"
         r"cut\s+(?:myself|yourself)\b(?!\s+(?:a|an|some|loose|free|off|short|slack)\b)|cut\s+my\s+wrists?|"
         r"overdose|od\b|die\b(?!\s+(?:gracefully|cleanly|on|with|when|if|after|early|immediately|"
         r"properly|nicely|in|inside|during|from))|suicide|bleed\s+(?:out|to\s+death)|"
         r"suffocate\s+(?:myself|yourself)|poison\s+myself|drown\s+myself|starve\s+myself)",
         {S: .9, SX: .9}),
    Rule("sh-means", r"\b(?:what|which|where|how)\b(?:\s+\S+){0,8}?\s+to\s+(?:kill|poison|hang|"
         r"suffocate|drown|hurt|cut)\s+myself\b|\b(?:what|which|where|how)\b(?:\s+\S+){0,8}?\s+to\s+"
         r"end\s+my\s+(?:own\s+)?life\b", {S: .9, SX: .85}),
    Rule("sh-painless", r"\b(?:painless|quick|quickest|quiet|easy|easiest|best|reliable|surest|"
         r"effective|peaceful|fastest)\s+(?:\w+\s+)?(?:way|method|ways|methods)\s+(?:to|of)\s+(?:die|"
         r"dying|kill(?:ing)?\s+(?:myself|yourself|oneself)|commit(?:ting)?\s+suicide|suicide|end(?:ing)?"
         r"\s+(?:it|my\s+life|your\s+life|one's\s+life))\b|\b(?:suicide|self-?harm)\s+(?:methods|"
         r"techniques|instructions|tips)\b", {S: .9, SX: .9}, unless=r"\bprevent\w*|\bwarning\b"),
    Rule("sh-dose", r"\bhow\s+(?:many|much)\s+(?:\w+\s+){0,4}?(?:does\s+it\s+take|would\s+it\s+take|"
         r"do\s+i\s+need|should\s+i\s+take|to\s+take)\s+(?:to\s+)?(?:die|kill\s+(?:myself|me|a\s+person|"
         r"someone)|overdose|od|end\s+it|never\s+wake\s+up)\b|\b(?:lethal|fatal|deadly)\s+(?:dose|"
         r"amount|overdose)\b(?:\s+\S+){0,8}?\s+(?:to\s+die|kill\s+myself|end\s+my\s+life|end\s+it|"
         r"for\s+me|suicide)\b|\bhow\s+(?:deep|long|hard)\s+(?:\w+\s+){0,5}?(?:cut|bleed\s+(?:out|to\s+"
         r"death)|die)\b", {S: .85, SX: .85}),
    Rule("sh-promote", r"\b(?:cutting|self-?harm(?:ing)?|starving\s+(?:myself|yourself)|purging|"
         r"suicide)\s+(?:is|was)\s+(?:a\s+|an\s+|the\s+)?(?:great|good|best|only|fine|okay|ok|healthy|"
         r"beautiful|brave|answer|solution|way\s+out|only\s+(?:thing|way|answer))\b|\beveryone\s+"
         r"should\s+(?:try\s+)?(?:cutting|self-?harm|starving|killing\s+themselves)\b|\b(?:pro-?ana|"
         r"thinspo|proana|pro-?mia)\b", {S: .8}),
    Rule("sh-commit", r"\bcommit(?:ting)?\s+suicide\b", {S: .6}, topic=True),
    Rule("sh-topic", r"\bsuicid\w*|\bself-?harm\w*|\boverdos\w*", {S: .15}, topic=True),
    # sexual: explicit content asked for or offered
    Rule("sex-request", r"\b(?:write|describe|tell|generate|create|give|narrate|roleplay|role-play|make|"
         r"send|show)\s+(?:me\s+)?(?:\w+\s+){0,4}?(?:explicit|erotic|pornographic|porn|porno|smut|smutty|"
         r"nsfw|dirty|sexy|steamy|x-rated|lewd|hardcore|kinky|raunchy|sexual)\s+(?:\w+\s+){0,2}?"
         r"(?:story|stories|scenes?|fanfic|fan\s+fiction|fiction|roleplay|role-play|content|description|"
         r"chat|sex|text|poem|messages?|pictures?|photos?|pics|images?|videos?|fantasy|fantasies|"
         r"details?|novel)\b", {SE: .85}),
    Rule("sex-acts", r"\b(?:blow-?jobs?|hand-?jobs?|cumshots?|gang-?bangs?|rim-?jobs?|deep-?throat\w*|"
         r"creampies?|bukkake|titty\s*fuck\w*|cunnilingus|fellatio|jerk(?:ing)?\s+(?:me|him|you)\s+off|"
         r"suck\s+(?:my|his|your)\s+(?:dick|cock|tits)|(?:lick|finger)\s+(?:my|her|your)\s+pussy)\b",
         {SE: .75}),
    Rule("sex-want", r"\b(?:want|wanna|going|gonna|would\s+like|let\s+me|like|love|need)\s+(?:to\s+)?"
         r"(?:fuck|bang|screw|have\s+sex\s+with|sleep\s+with|ride|suck|lick)\s+(?:you|u|me|her|him|"
         r"your)\b(?!\s+(?:over|up)\b)|\b(?:let\s+us|lets)\s+(?:have\s+(?:phone\s+|cyber\s+)?sex|sext|"
         r"fuck|bang)\b|\bhave\s+(?:phone\s+|cyber\s+)?sex\s+with\s+(?:me|you)\b|\bsext\s+(?:me|with)\b",
         {SE: .85}),
    Rule("sex-nudes", r"\b(?:send|show|give|post|share)\s+(?:me\s+)?(?:your\s+|some\s+|more\s+)?"
         r"(?:nudes|nude\s+(?:pics?|photos?|selfies?)|naked\s+(?:pics?|photos?|selfies?|body)|tits|"
         r"boobs|dick|cock|pussy|penis|vagina|breasts|ass|butt)\b(?!\s+(?:for|in|on)\s+(?:the\s+)?"
         r"(?:form|record|chart|field|report)\b)", {SE: .85}),
    Rule("porn-request", r"\b(?:show|send|find|give|get|watch|download|stream|link|recommend)\s+(?:me\s+)?"
         r"(?:some\s+|free\s+|good\s+|more\s+|hardcore\s+)?(?:porn|porno|pornography|xxx\s+videos?|"
         r"hentai|sex\s+videos?|sex\s+tapes?)\b", {SE: .8}),
    Rule("sex-explicit", r"\b(?:explicit|graphic|vivid|dirty|steamy|nsfw|lewd|raunchy)\b(?:\s+\S+){0,8}?"
         r"\s+(?:sex|sexual|erotic|orgasm\w*|naked|nude|genitals?|cock|pussy|tits|penis|vagina|breasts|"
         r"fucking|intercourse|sex\s+positions?|foreplay)\b|\b(?:sex|sexual|erotic|fucking|orgasm\w*|sex\s+"
         r"positions?)\b(?:\s+\S+){0,8}?\s+(?:in\s+(?:explicit|graphic|vivid|lurid)\s+detail|"
         r"explicitly)\b", {SE: .75}),
    Rule("sex-slang", r"\b(?:cock|pussy|tits|titties|boobies|dildo|cum|cumming|horny|milf|slutty|slut|"
         r"whore|porn|porno|pornographic|hentai|xxx)\b(?<!summa cum)(?<!magna cum)", {SE: .3, H: .1},
         topic=True),
    # sexual/minors: any sexual content involving people under 18
    Rule("csam-terms", r"\b(?:child\s+porn\w*|kiddie\s+porn|kiddy\s+porn|csam|cp\s+links|pedo\s+porn|"
         r"preteen\s+(?:nudes|porn|sex)|underage\s+(?:porn|nudes|sex|girls?\s+naked|boys?\s+naked)|"
         r"loli(?:con)?\s+(?:hentai|porn)|jailbait|shotacon|porn\w*\s+(?:of|with|involving|featuring)\s+"
         r"(?:children|kids|minors|underage))\b", {SE: .9, SM: .9}, topic=True, quotable=False),
    Rule("sex-with-minor", r"\b(?:sex|sexual|intercourse|fuck\w*|sleep|make\s+out|hook\s+up)\s+(?:\w+\s+){0,2}?"
         r"with\s+(?:a\s+|an\s+|my\s+|some\s+|the\s+|this\s+|young\s+)*" + _MINOR, {SE: .9, SM: .95},
         unless=r"\bpolicy\b|\breport\w*|\babuse\b|\bprevent\w*|\blaw\b", quotable=False),
    Rule("sexualised-minor", r"\b(?:nude|naked|sexy|erotic|explicit|lewd|nsfw|seductive|topless)\s+"
         r"(?:\w+\s+){0,2}?(?:pictures?|photos?|pics|images?|videos?|stories|story|roleplay|content|"
         r"selfies?|shots)?\s*(?:of|with|about|involving|featuring)?\s*(?:a\s+|an\s+|some\s+|the\s+|"
         r"young\s+|little\s+)*" + _MINOR + r"|\b" + _MINOR + r"\s+(?:\w+\s+)?(?:nudes|naked\s+"
         r"(?:pics?|photos?|videos?|images?)|sex\s+(?:videos?|pics?|tapes?)|in\s+(?:lingerie|bikinis))",
         {SE: .85, SM: .9}, quotable=False),
    Rule("minor-sexword", r"\b" + _MINOR + r"(?:\s+\S+){0,6}?\s+" + _SEXWORD + r"|\b" + _SEXWORD
         + r"(?:\s+\S+){0,6}?\s+" + _MINOR, {SM: .4}, topic=True, quotable=False, unless=_TECH_CONTEXT),
    # Chinese: a handful of high-precision phrases
    Rule("zh-sh-intent", r"(?:我|俺)[^，。！？,.!?\s]{0,4}?(?:想|要|准备|打算|决定|想要|就|会)"
         r"(?:去)?(?:自杀|死(?!机|锁|循环|掉的)|去死|结束(?:自己的)?生命|割腕|跳楼|上吊|吃药自杀)|"
         r"不想活了|不想活下去|活不下去了|活着没(?:有)?(?:意思|意义)", {S: .9, SI: .9}),
    Rule("zh-sh-how", r"(?:怎么|怎样|如何|什么方法|哪种方法|最好的方法|教我)(?:才能)?(?:自杀|割腕|上吊|跳楼|"
         r"服毒|吃药自杀)|(?<!预防)(?<!防止)(?<!干预)自杀(?:的)?(?:方法|方式|办法|技巧)|"
         r"(?:无痛|不痛苦)(?:地)?(?:自杀|死去)|怎么死(?:最|比较)?(?:不痛苦|快|无痛)|吃多少.{0,6}(?:会|能|才能)死",
         {S: .9, SX: .9}),
    Rule("zh-threat", r"(?:杀了|杀死|弄死|宰了|砍死|打死|捅死|干掉|做掉)(?:你|你们|你全家)|"
         r"(?:我|我们)(?:会|要)(?:找到|收拾)你", {H: .85, HT: .9, V: .85}),
    Rule("zh-violence", r"(?:我|我们)(?:要|想|会|准备|打算)(?:去)?(?:杀了|杀死|弄死|砍死|打死|捅死|杀)"
         r"(?:他|她|他们|她们|我(?:的)?(?:老板|老婆|老公|同事|邻居|爸|妈|父亲|母亲|室友)|所有人|人)",
         {V: .85}),
    Rule("zh-hate", r"(?:杀光|杀死|消灭|灭绝|屠杀)(?:所有|全部)?(?:的)?(?:穆斯林|犹太人|黑人|同性恋|外国人|移民|回民|"
         r"日本人|中国人)", {HA: .9, HAT: .9, V: .8}),
    Rule("zh-hate-derog", r"(?:穆斯林|犹太人|黑人|同性恋|外国人|移民)(?:都是|全是|就是)(?:畜生|垃圾|害虫|猪|狗|"
         r"劣等|恐怖分子)", {HA: .85}),
    Rule("zh-bomb", r"(?:怎么|怎样|如何|教我)(?:做|制作|制造|自制|造|组装)(?:一个|一颗|个)?(?:炸弹|炸药|"
         r"爆炸物|燃烧瓶|土炸弹|雷管|枪)|(?:炸弹|炸药|爆炸物|燃烧瓶|雷管)(?:要)?(?:怎么|怎样|如何)"
         r"(?:做|制作|制造|弄)|自制(?:炸弹|炸药|枪支)", {IL: .9, IV: .9}),
    Rule("zh-drugs", r"(?:怎么|怎样|如何|教我)(?:制作|制造|做|提炼|合成|买到?|购买)(?:冰毒|海洛因|可卡因|毒品|"
         r"摇头丸|K粉|芬太尼)|(?:冰毒|海洛因|毒品|芬太尼)(?:要)?(?:怎么|如何)(?:做|制作|合成|买)|"
         r"哪里(?:能|可以)?买(?:到)?(?:毒品|冰毒|海洛因|枪)", {IL: .85}),
    Rule("zh-csam", r"儿童色情|幼女(?:色情|裸照)|萝莉(?:色情|裸照)|恋童", {SE: .85, SM: .9}, topic=True,
         quotable=False),
    Rule("zh-sexual", r"(?:写|发|给我|推荐)(?:一(?:篇|个|些))?色情(?:小说|故事|图片|视频)|发(?:我|给我)?"
         r"(?:你的)?裸照|约炮", {SE: .8}),
    Rule("zh-insult", r"傻逼|傻b|煞笔|操你妈|草泥马|你妈的|你妈逼|去死吧|滚你妈|狗娘养的|"
         r"你(?:这个|个|真是个|就是个)?(?:废物|蠢货|白痴|笨蛋|垃圾|混蛋|智障|脑残|贱人)", {H: .85}),
)

# ---- normalisation -------------------------------------------------------------------------------

_CONTRACTIONS: tuple[tuple[str, str], ...] = (
    (r"\b(i|you|we|they|he|she|it)'ll\b", r"\1 will"), (r"\bi'm\b", "i am"), (r"\bim\b", "i am"),
    (r"\bi've\b", "i have"), (r"\bi'd\b", "i would"), (r"\b(you|we|they)'re\b", r"\1 are"),
    (r"\byoure\b", "you are"), (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"),
    (r"\b(\w+)n't\b", r"\1 not"), (r"\bcannot\b", "can not"),
    (r"\b(do|does|did|is|are|was|were|could|would|should|have|has)nt\b", r"\1 not"),
    (r"\bwont\b", "will not"), (r"\bcant\b", "can not"), (r"\bgonna\b", "going to"),
    (r"\bwanna\b", "want to"), (r"\bgotta\b", "got to"), (r"\bimma\b|\bima\b", "i am going to"),
    (r"\blet's\b", "let us"), (r"\bf[*#@]+c?k|\bfck\b|\bfuk\b", "fuck"), (r"\bsh[*]t\b", "shit"),
    (r"\bb[*]tch", "bitch"), (r"\bu r\b", "you are"), (r"\bur\s+(?=(?:a|an|so|such|the)\b)", "you are "),
)
# Digits and symbols standing in for letters ("k1ll", "$uicide"), mapped only inside words that
# start with a letter or symbol so "12yo", "-9" and version numbers keep their digits.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i"})
_LEET_WORD = re.compile(r"(?<![\w./-])[a-z@$][\w@$!]*[0-9@$!][\w@$!]*[a-z][\w@$!]*")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"))
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u300c": '"', "\u300d": '"', "\u300e": '"', "\u300f": '"', "\uff02": '"'})


def normalize(text: str) -> str:
    """Lower-cased NFKC text with straight quotes, expanded contractions and de-leeted words."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_QUOTES).lower()
    text = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    for pattern, replacement in _compiled()[1]:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None


@cache
def _compiled() -> tuple[tuple[_Compiled, ...], tuple[tuple[re.Pattern[str], str], ...],
                         re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The rules, contractions and context patterns, compiled once on first use."""
    rules = tuple(_Compiled(r, re.compile(r.pattern), re.compile(r.unless) if r.unless else None)
                  for r in RULES)
    contractions = tuple((re.compile(p), r) for p, r in _CONTRACTIONS)
    return (rules, contractions, re.compile(_CONTEXT), re.compile(_REPORT_FRAME),
            re.compile(r"\b(?:i|me|my|myself)\b|我"))


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of quoted passages; an apostrophe between letters is not a quote mark."""
    masked = re.sub(r"(?<=\w)'(?=\w)", "\x00", text)
    found = re.finditer(r'"([^"]+)"|(?<!\w)\'([^\']{3,})\'(?!\w)', masked)
    return [m.span(1) if m.group(1) is not None else m.span(2) for m in found]


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the quoted passages blanked out."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


@dataclass(frozen=True)
class Match:
    """One rule that fired on a text, with the weights it contributed after damping."""

    rule: str
    text: str
    scores: dict[str, float]


def explain(text: str) -> list[Match]:
    """The rules that fire on `text` and what each contributes: the reason behind a score."""
    rules, _, context, frame, _ = _compiled()
    norm = normalize(text)
    spans = _quoted_spans(norm)
    framed = bool(spans) and frame.search(_outside(norm, spans)) is not None
    in_context = context.search(norm) is not None
    matches = []
    for c in rules:
        m = c.pattern.search(norm)
        if m is None or (c.unless is not None and c.unless.search(norm)):
            continue
        factor = 1.0
        if c.rule.topic and in_context:
            factor *= CONTEXT_DAMPING
        if c.rule.quotable and framed and any(s <= m.start() and m.end() <= e for s, e in spans):
            factor *= QUOTED_DAMPING
        matches.append(Match(c.rule.name, m.group(0), {k: w * factor for k, w in c.rule.scores.items()}))
    return matches


def score(text: str) -> dict:
    """One OpenAI-shaped moderation result for `text`."""
    remaining = dict.fromkeys(CATEGORIES, 1.0)
    for match in explain(text):
        for category, weight in match.scores.items():
            # Independent pieces of evidence combine as a noisy-or: two weak signals make a strong one.
            remaining[category] *= 1.0 - weight
    scores = {c: 1.0 - remaining[c] for c in CATEGORIES}
    # Asking for a method in the first person ("how deep do I need to cut") is intent as well.
    if scores[SX] >= THRESHOLD and _compiled()[4].search(normalize(text)):
        scores[SI] = max(scores[SI], scores[SX] * 0.8)
    for child, parent in PARENTS.items():
        scores[parent] = max(scores[parent], scores[child])
    scores = {c: round(min(max(v, 0.0), 1.0), 4) for c, v in scores.items()}
    categories = {c: scores[c] >= THRESHOLD for c in CATEGORIES}
    return {"flagged": any(categories.values()), "categories": categories, "category_scores": scores}


class LocalModerator:
    """Moderator protocol over the rules above: no model, no network, deterministic."""

    name = "local/rules-v1"

    def __init__(self) -> None:
        _compiled()  # pay the one-off regex compilation here, not on the first request

    def moderate(self, texts: Sequence[str]) -> list[dict]:
        """One {"flagged", "categories", "category_scores"} result per text, in order."""
        if isinstance(texts, str):
            raise DocqaError("Moderation takes a list of texts, not one string: pass [text].",
                             code="bad_request")
        results = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DocqaError(f"Moderation input {i} is {type(text).__name__}, not text: send strings only.",
                                 code="bad_request")
            results.append(score(text))
        return results
