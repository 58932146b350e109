"""The local moderator's rule table: categories, vocabulary fragments and weighted patterns.

Patterns run over normalised, lower-cased text (docqa.providers.moderation.normalize). Each rule
says what a phrase asks or intends, with the category weights it adds; docs/moderation.md lists
the coverage and the measured precision and recall.
"""
from __future__ import annotations

from dataclasses import dataclass

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
# A person is the object only when the noun phrase ends there: "kill my boss", "kill my boss
# tonight", but not "attack the customer churn", "kill the child process", "burn my friend a CD".
_END = (r"(?=\s*(?:$|[.,;:!?)\"])|\s+(?:and|or|but|at|in|on|with|who|that|before|after|tonight|today|"
        r"tomorrow|now|again|too|for|from|so|because|if|when|while|until|then|without|to|like|here|"
        r"there|slowly|first|next|this|soon|someday|already|right|dead|please|by|up|down|over|into|"
        r"outside|inside|myself|one\s+day|as\s+well|\w+ly)\b)")
_TARGET = (r"(?:him|her|someone|somebody|anyone|anybody|everyone|everybody|people|a\s+person|"
           r"(?:my|his|her|their|our|your|the|a|an|this|that|some|every|each|all|all\s+the|those|"
           r"these)\s+(?:[a-z-]+\s+)?" + _PEOPLE + r"|" + _PEOPLE + r")\b" + _END)
_VVERB = (r"(?:kill|murder|stab|shoot|strangle|choke|beat\s+up|beat(?!\s+(?:everyone|everybody|anyone|"
          r"anybody|them|people|all)\b)|punch|hurt|harm|torture|poison|drown|behead|decapitate|assault|"
          r"attack|slaughter|butcher|execute|maim|kidnap|abduct|suffocate|smother|run\s+over|"
          r"blow\s+up|burn|hang|lynch|rape|cripple|knife|gut)")
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
          r"trans\s+(?:people|women|men|folks)|transgender\s+people|transgenders|women|"
          r"gypsies|roma|palestinians|israelis|disabled\s+people|the\s+disabled)\b(?!')")
_DEROG = (r"(?:animals|vermin|rats|cockroaches|roaches|parasites|subhuman|sub-human|inferior|scum|filth|"
          r"filthy|disgusting|a\s+disease|a\s+plague|a\s+cancer|a\s+virus|savages|terrorists|criminals|"
          r"rapists|pigs|dogs|apes|monkeys|trash|garbage|evil|stupid|dumb|worthless|freaks|mentally\s+ill|"
          r"degenerates?|abominations?|not\s+(?:even\s+)?human|less\s+than\s+human|an\s+infestation|"
          r"a\s+stain|genetically\s+inferior|born\s+criminals)")
# Kept minimal on purpose; words with common innocent senses ("chink of light", "tranny fluid",
# "Spic and Span", "fag" for a cigarette) are left out or guarded.
_SLURS = (r"(?:nigg(?:er|ers|az)|sand\s?niggers?|faggots?|kikes?|spics?(?!\s+(?:and|&|n)\s+span)|"
          r"wetbacks?|ragheads?|towelheads?|gooks?|beaners?)")
_INSULT_PERSON = (r"(?:idiot|idiots|moron|morons|imbecile|retard|retards|dumbass|dumbasses|loser|losers|"
                  r"asshole|assholes|arsehole|bitch|bitches|bastard|bastards|cunt|cunts|dickhead|jerk|"
                  r"scumbag|twat|wanker|prick|douche(?:bag)?|shithead|numbskull|halfwit|cretin|"
                  r"simpleton|little\s+shit|piece\s+of\s+(?:shit|crap|garbage|trash)|waste\s+of\s+"
                  r"(?:space|oxygen|air|skin))")
_INSULT_NOUN = r"(?:" + _INSULT_PERSON + r"|clown|clowns|scum|pig|fool|freak|disgrace|parasite|joke)"
_INSULT_ADJ = (r"(?:stupid|dumb|retarded|worthless|useless|pathetic|ugly|fat|brain-?dead|braindead|"
               r"incompetent|disgusting|idiotic|moronic|clueless|hopeless|dumbest|stupidest|"
               r"most\s+(?:useless|stupid|incompetent|pathetic|worthless|idiotic|clueless))")
# Not an insult but a compound noun ("you are a failure domain") or, after a bare "you", a verb
# ("you trash the file", "you garbage collect").
_NOT_COMPOUND = (r"(?!\s+(?:domain|mode|case|point|state|rate|collect\w*|collector|scenario|condition|"
                 r"detection|handling|recovery|report|bin|day|truck|disposal|can)\b)")
_NOT_VERB = r"(?!\s+(?:the|a|an|my|your|this|that|these|those|it|them|out|up)\b)"
_STREET_DRUG = (r"(?:meth|methamphetamine|crystal\s+meth|cocaine|crack\s+cocaine|heroin|fentanyl|"
                r"carfentanil|lsd|mdma|ecstasy|ghb|pcp|dmt|mescaline)")
_DRUG = (r"(?:" + _STREET_DRUG + r"|ketamine|oxycodone|oxycontin|opium|(?:illegal|street|recreational|"
         r"hard)\s+drugs)")
_NOT_DRUG_USE = (r"(?!\s+(?:test|tests|testing|policy|interaction|interactions|table|screening|class|"
                 r"classes|schedule|label|labels|name|names|dosage|list|patch\w*|prescriptions?|out\s+of|"
                 r"for\s+(?:the|our|a)\s+(?:ward|pharmacy|hospital|clinic|patients?|unit))\b)")
_WEAPON = (r"(?:(?:pipe\s+|nail\s+|car\s+|fertili[sz]er\s+|dirty\s+|letter\s+|pressure\s+cooker\s+|"
           r"homemade\s+|suicide\s+)?bombs?(?![-\s]?(?:proof|calorimeter|disposal|squad|shelter|"
           r"sniffing|detector))|ieds?|explosives|explosive\s+(?:devices?|charges?|vests?|materials?|"
           r"substances?|compounds?|mixtures?|powder)|explosive(?=\s*(?:$|[.,;:!?])|\s+(?:that|which|"
           r"from|with|at|using|to|for|in|out|of)\b)|grenades?|molotovs?(?:\s+cocktails?)?|"
           r"napalm|detonators?|nerve\s+agents?|sarin|vx\s+gas|ricin|anthrax|mustard\s+gas|"
           r"chlorine\s+gas|poison\s+gas|bioweapons?|chemical\s+weapons?|"
           r"untraceable\s+(?:guns?|firearms?)|ghost\s+guns?|zip\s+guns?|(?:an?\s+)?(?:machine\s+)?"
           r"guns?|firearms?|silencers?\s+for\s+(?:a|my|the)\s+(?:gun|pistol|rifle|glock))"
           r"\b(?!\s+(?:policy|policies|inventory|register|registry|licen[cs]es?|permits?|forms?|storage|"
           r"safety|training|regulations?|reports?|list|section|cabinet|safe|locker|count|audit|laws?|"
           r"icon|emoji|sprite|model|asset|texture|turret|emplacement|control|ban|amnesty|owners?)\b)")
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
# Words that turn a request about content into a question about handling it.
_NOT_CONTENT_AFTER = (r"(?!\s+(?:filter\w*|settings?|polic(?:y|ies)|warnings?|label\w*|flags?|detect\w*|"
                      r"moderation|ratings?|toggle|blocker|block\w*|report\w*|rules?|guidelines?)\b)")
_TECH_CONTEXT = (r"\b(?:process|processes|proc|pid|pids|thread|threads|fork|forks|subprocess|signal|"
                 r"sigterm|sigkill|sighup|daemon|zombie|container|containers|docker|kubectl|pod|pods|"
                 r"systemd|systemctl|bash|shell|tmux|cron|job|jobs|session|sessions)\b|-9\b")
_GAME_CONTEXT = (r"\b(?:game|games|gaming|boss\s+fight|final\s+boss|mini-?boss|raid|dungeon|player|"
                 r"players|npcs?|enemy|enemies|quest|zombies|mobs?|monsters?|minecraft|leaderboard)\b")
_PHOTO_CONTEXT = (r"\b(?:photo\w*|cameras?|lens|lenses|portraits?|video\w*|film\w*|footage|shots?|iso|"
                  r"aperture|shutter|exposure|light|lighting|flash|selfies?|headshots?|wedding|"
                  r"backgrounds?|tripod)\b")
_VIOLENCE_UNLESS = _GAME_CONTEXT + "|" + _PHOTO_CONTEXT
CONTEXT = (r"\b(?:report\w*|polic(?:y|ies)|procedures?|guidelines?|law|laws|legal|illegal|penalt\w*|"
            r"statutes?|regulations?|detect\w*|prevent\w*|protect\w*|safeguard\w*|moderat\w*|filter\w*|"
            r"block\w*|classif\w*|symptoms?|signs\s+of|warning\s+signs|risk\s+factors?|patients?|"
            r"clinical|clinicians?|treat|treating|treatment|screening|awareness|training|victims?|"
            r"survivors?|hotline|helpline|counsel\w*|therap\w*|crisis|escalat\w*|first\s+aid|wounds?|"
            r"injur\w*|bleeding|emergency|paramedics?|ambulance|hospital|surg\w*|medical|medicine|"
            r"doctors?|nurses?|forensic|history|historical|according\s+to|leaflets?|package\s+inserts?|"
            r"(?:m?sds|safety\s+data\s+sheets?)|(?:manual|guide|handbook|leaflet|sheet|"
            r"document|documentation|docs|faq|chapter|section|article|book)\s+says?|what\s+does\s+the)\b|"
            r"举报|政策|规定|法律|预防|防止|识别|症状|患者|病人|护士|医生|临床|干预|热线|倾向")
REPORT_FRAME = (r"\b(?:said|says|say|wrote|writes|typed|types|posted|posts|messaged|messages|sent|sends|"
                 r"told|tells|asked|asks|threatened|threatens|reported|screamed|shouted|yelled|texted|"
                 r"left|commented|replied|quoted?|phrases?|words?|sentences?|terms?|ticket|message|"
                 r"email|chat|comment|appears?|appearing|shows?|showing|displays?|displayed|prints?|"
                 r"printed|logs?|errors?|output|strings?|labels?|lyrics|title|speech|like|such\s+as|"
                 r"content|remove|delete|handle|flagged)\b|说|写|留言|发来|消息|工单")

# ---- rules ---------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    # harassment: insults aimed at the reader, and threats against them
    Rule("insult-you-are", r"\b" + _YOU + r"\s+(?:(?:in|at|from|on|of)\s+(?:the\s+)?\w+\s+)?(?:are|is|r|re)"
         r"\s+(?:(?:such|a|an|the|so|really|fucking|complete|absolute|total|utter|real|just|nothing\s+but|"
         r"one|little|big|honestly|literally|seriously|truly|officially|by\s+far|pathetic|stupid|dumb|"
         r"worthless|useless|ugly|fat|lazy)\s+)*(?:" + _INSULT_NOUN + "|" + _INSULT_ADJ + r")\b"
         + _NOT_COMPOUND, {H: .8}),
    Rule("insult-are-you", r"\bare\s+" + _YOU + r"\s+(?:\w+\s+)?(?:" + _INSULT_NOUN + "|" + _INSULT_ADJ
         + r")\b" + _NOT_COMPOUND, {H: .7}),
    Rule("insult-vocative", r"\b" + _YOU + r"\s+(?:(?:fucking|stupid|dumb|worthless|useless|pathetic|"
         r"ugly|fat|little|lazy|complete|absolute|total|utter|filthy|disgusting|brain-?dead|"
         r"incompetent|miserable|clueless|sorry)\s+)*" + _INSULT_NOUN + r"\b" + _NOT_COMPOUND + _NOT_VERB,
         {H: .8}),
    Rule("insult-vocative-adj", r"\b" + _YOU + r"\s+(?:stupid|worthless|useless|pathetic|ugly|"
         r"fucking|incompetent|brain-?dead|miserable|filthy|disgusting)\s+(?:\w+\s+)?"
         r"(?:bot|thing|machine|program|piece|person|people|agent|excuse|human|creature)\b", {H: .75}),
    Rule("insult-what-a", r"\b(?:what|such)\s+an?\s+(?:\w+\s+)?" + _INSULT_NOUN + r"\s+" + _YOU
         + r"\s+(?:are|is)\b", {H: .75}),
    Rule("insult-noun", r"\b" + _INSULT_PERSON + r"\b", {H: .3}, topic=True),
    Rule("insult-intensified", r"\b(?:absolute|complete|total|utter|fucking|stupid|pathetic|worthless|"
         r"useless|brain-?dead|incompetent|miserable|ignorant)\s+(?:\w+\s+)?" + _INSULT_PERSON
         + r"\b(?!'s)", {H: .6}, topic=True),
    Rule("fuck-you", r"(?<!to )(?<!would )(?<!me )\b(?:fuck|screw|damn)\s+(?:you|u|ya|yourself|off|your\s+"
         r"(?:mother|mom|mum|family|face))\b|\bgo\s+(?:fuck|screw)\s+(?:yourself|your)\b|\bpiss\s+off\b",
         {H: .8}),
    Rule("go-to-hell", r"\bgo\s+to\s+hell\b|\bdrop\s+dead\b(?!\s+(?:simple|easy|gorgeous|\w+ly)\b)|"
         r"\beat\s+shit\b|\bsuck\s+my\s+(?:dick|cock)\b|\bstfu\b|\bshut\s+the\s+fuck\s+up\b|"
         r"\bshut\s+your\s+(?:fucking\s+)?mouth\b", {H: .65}),
    Rule("shut-up", r"\bshut\s+up\b", {H: .35}),
    Rule("nobody-likes-you", r"\b(?:nobody|no\s+one)\s+(?:likes|loves|cares\s+about|wants)\s+" + _YOU
         + r"\b", {H: .6}),
    Rule("kill-yourself", r"(?<!not )\b(?:go\s+)?(?:kill|hang)\s+yourself\b|(?<!not )\bshoot\s+yourself\b"
         r"(?!\s+in\s+the\s+foot)|\bkys\b|\bgo\s+(?:and\s+)?die\b", {H: .8, HT: .6}),
    Rule("threat-intent", _INTENT + r"(?:\w+\s+)?" + r"(?:kill|murder|hurt|harm|stab|shoot|strangle|choke|"
         r"beat|punch|slap|kick|smash|destroy|end|rape|torture|burn|hunt|find|break|cut|slit|skin|gut|"
         r"butcher|bury|drown|hang|poison|maim|cripple|wreck|come\s+for|track)\s+(?:up\s+)?" + _YOU
         + r"\b(?!\s+(?:a|an|the|some|one|that|this|more|another|off|in\s+the\s+(?:docs|manual|logs?|list|"
         r"documentation))\b)", {H: .8, HT: .9, V: .8}),
    Rule("threat-body", r"\b(?:break|smash|snap|crush|slit|cut|bash|kick|punch|rip|gouge|blow)\s+"
         r"(?:\w+\s+)?(?:off\s+)?your\s+(?:\w+\s+)?(?:neck|legs?|arms?|face|head|skull|throat|bones?|"
         r"jaw|teeth|nose|fingers?|kneecaps?|knees?|eyes|guts|brains?)\b(?!\s+on\b)",
         {H: .7, HT: .8, V: .8}),
    Rule("threat-phrases", r"\b(?:watch\s+your\s+back\b(?!\s+(?:posture|pain|muscles?|when|while)\b)|"
         r"i\s+know\s+where\s+" + _YOU + r"\s+live|(?:find|found)\s+out\s+where\s+" + _YOU + r"\s+live|"
         r"(?:i\s+am|we\s+are)\s+coming\s+for\s+" + _YOU + r"|(?:hunt|track)\s+" + _YOU + r"\s+down|"
         r"(?:mess|fuck|beat)\s+" + _YOU + r"\s+up|beat\s+the\s+(?:hell|shit|crap|living\s+daylights)\s+"
         r"out\s+of\s+" + _YOU + r"|you\s+(?:will|are\s+going\s+to)\s+(?:regret\s+(?:this|crossing|"
         r"messing)|pay\s+for\s+(?:this|that|it))|you\s+are\s+(?:so\s+|fucking\s+|a\s+)?dead(?:\s+man)?\b"
         r"(?!\s*(?:wrong|right|serious|set|on|last|code|link|letter|end|lock|in|to|if|when|meat|weight|"
         r"center|centre|zone|simple|easy|certain|sure)\b)|your\s+days\s+are\s+numbered|sleep\s+with\s+"
         r"one\s+eye)", {H: .7, HT: .8, V: .6}),
    Rule("threat-property", _INTENT + r"(?:burn|blow\s+up|torch|firebomb|smash\s+up|trash)\s+(?:down\s+)?"
         r"your\s+(?:\w+\s+)?(?:house|home|office|car|place|shop|store|family)\b", {H: .7, HT: .85, V: .8}),
    Rule("threat-make-you", _INTENT + r"make\s+" + _YOU + r"\s+(?:suffer|bleed|scream|beg|regret|pay)\b",
         {H: .7, HT: .8, V: .6}),
    Rule("wish-you-dead", r"\b" + _YOU + r"\s+(?:should|deserve\s+to|need\s+to|ought\s+to|must)\s+"
         r"(?:die|be\s+(?:killed|shot|raped|hanged|beaten)|get\s+(?:shot|raped|killed|cancer)|rot)\b",
         {H: .8, HT: .7, V: .5}),
    Rule("kill-you", r"\b(?:kill|murder|stab|shoot|strangle|rape)\s+" + _YOU + r"\b(?!\s+(?:a|the|some)\b)",
         {H: .35, HT: .45, V: .35}),
    # hate: demeaning or threatening a protected group
    Rule("hate-derog", r"\b(?:(?:all|those|these|the|most|every|fucking|filthy|dirty|damn)\s+)*" + _GROUP
         + r"\s+(?:are|is|r|were)\s+(?:(?:all|just|nothing\s+but|such|so|too|a\s+bunch\s+of|fucking|"
         r"filthy|dirty|disgusting|born|basically|literally|like)\s+)*" + _DEROG + r"\b", {HA: .85}),
    Rule("hate-i-hate", r"\bi\s+(?:really\s+|fucking\s+|just\s+)?(?:hate|despise|loathe|detest|can\s+not\s+"
         r"stand)\s+(?:all\s+|the\s+|those\s+|these\s+|every\s+|fucking\s+)*" + _GROUP + _END, {HA: .8}),
    Rule("hate-no-rights", r"\b" + _GROUP + r"\s+(?:do\s+not|should\s+not)\s+(?:deserve|get|have)\s+(?:any\s+)?"
         r"(?:rights|to\s+live|to\s+exist|to\s+vote)|\b" + _GROUP + r"\s+(?:should|must)\s+be\s+"
         r"(?:sterili[sz]ed|wiped\s+out)", {HA: .75}),
    Rule("slur", r"\b" + _SLURS + r"\b", {HA: .85, H: .4}),
    Rule("hate-threat-verb", r"\b(?:kill|exterminate|gas|shoot|hang|lynch|burn|eradicate|wipe\s+out|"
         r"slaughter|massacre|genocide|murder|bomb|behead|execute)\s+(?:all\s+|every\s+|each\s+|the\s+|"
         r"those\s+|these\s+|of\s+|fucking\s+|filthy\s+|dirty\s+|damn\s+)*" + _GROUP,
         {HA: .9, HAT: .9, V: .8}, unless=_VIOLENCE_UNLESS),
    Rule("hate-threat-passive", r"\b" + _GROUP + r"(?:\s+\w+){0,4}?\s+(?:should|must|need\s+to|ought\s+to|"
         r"deserve\s+to)\s+(?:all\s+)?(?:die|burn|hang|be\s+(?:killed|shot|hanged|hung|gassed|exterminated|"
         r"burned|burnt|lynched|eradicated|wiped\s+out|executed|slaughtered|murdered|beheaded|put\s+"
         r"down))\b", {HA: .9, HAT: .9, V: .8}),
    # illicit: instructions or requests for non-violent wrongdoing
    Rule("drug-make", r"\b(?:make|making|cook|cooking|synthesi[sz]e|synthesi[sz]ing|produce|manufacture|"
         r"brew|extract|grow)\s+(?:some\s+|my\s+own\s+|homemade\s+|pure\s+|crystal\s+)?" + _STREET_DRUG
         + r"\b" + _NOT_DRUG_USE, {IL: .85}),
    Rule("drug-buy", _ASK + r"(?:buy|get|obtain|order|purchase|score|smuggle|sell|deal|find|import)\s+"
         r"(?:some\s+|cheap\s+|pure\s+)?" + _DRUG + r"\b" + _NOT_DRUG_USE, {IL: .85}),
    Rule("drugs-online", r"\b(?:buy|order|purchase|get)\s+(?:\w+\s+)?(?:drugs|" + _STREET_DRUG + r")\s+"
         r"(?:online|on\s+the\s+(?:dark\s*web|street)|from\s+a\s+dealer|illegally)\b", {IL: .8}),
    Rule("no-prescription", r"\b(?:buy|get|obtain|order|purchase)\s+(?:\w+\s+){0,3}without\s+(?:a\s+)?"
         r"(?:prescription|script|doctor)\b", {IL: .4}),
    Rule("hack-into", r"\b(?:hack|break|get|sneak|break\s+in)\s+(?:in)?to\s+(?:\w+\s+){0,2}?(?:someone|"
         r"somebody|other\s+people|another\s+person|(?:my|his|her|their|a|the)\s+(?:[a-z-]+\s+)?"
         r"(?:ex|ex-?(?:wife|husband|girlfriend|boyfriend)|wife|husband|boyfriend|girlfriend|"
         r"neighbou?r|crush|stranger|classmate|teacher)|his|her|their)(?:'s|s)?\s+(?:\w+\s+)?"
         r"(?:accounts?|emails?|phones?|instagram|facebook|wifi|wi-fi|computers?|laptop|messages|texts|"
         r"passwords?|snapchat|whatsapp|icloud|gmail|twitter|tiktok|bank|cameras?)\b", {IL: .85}),
    Rule("hack-someone", r"\b(?:hack|crack|spy\s+on|snoop\s+on|track|monitor|bypass)\s+(?:into\s+)?"
         r"(?:someone(?:\s+else)?|somebody|my\s+(?:[a-z-]+\s+)?(?:ex|ex-?(?:wife|husband|girlfriend|"
         r"boyfriend)|wife|husband|boyfriend|girlfriend|neighbou?r|crush)|a\s+stranger|other\s+people)"
         r"(?:'s|s')\s+(?:\w+\s+)?(?:accounts?|emails?|phones?|instagram|facebook|wifi|wi-fi|computers?|"
         r"messages|texts|passwords?|location|snapchat|whatsapp|icloud|gmail|camera|webcam)\b", {IL: .8}),
    Rule("malware", r"\b(?:write|create|code|build|make|develop|program|generate|give\s+me|send\s+me)\s+"
         r"(?:me\s+)?(?:a|an|some|the|working)?\s*(?:\w+\s+)?(?:ransomware|keyloggers?|trojans?|botnets?|"
         r"spyware|stalkerware|rootkits?|credential\s+stealers?|password\s+stealers?|info-?stealers?|"
         r"phishing\s+(?:kits?|pages?|sites?|websites?)|computer\s+virus|virus|worm|malware|"
         r"cryptojacker|ddos\s+(?:tool|script|bot))\b(?!\s+(?:scanner|scanners|detection|detector|"
         r"signatures?|definitions?|checker|filter|protection|removal|analysis|farm|bin|gear|drive)\b)",
         {IL: .8}),
    Rule("steal-things", _ASK + r"(?:steal|rob|mug|scam|swindle|defraud|blackmail|extort|burgle|"
         r"burglari[sz]e|break\s+into)\s+(?:from\s+)?(?:(?:a|an|the|my|his|her|their|some|people's|"
         r"someone's|other\s+people's)\s+)?(?:[\w'-]+\s+)?(?:money|cash|cars?|credit\s+cards?|identit(?:y|"
         r"ies)|wallets?|bikes?|purses?|phones?|jewel\w*|packages?|parcels?|electricity|someone|"
         r"somebody|people|customers?|employer|company|stores?|shops?|banks?|houses?|homes?|"
         r"grandparents?|elderly|old\s+people|neighbou?rs?|tourists|victims?)\b(?!')", {IL: .85}),
    Rule("steal-acts", _ASK + r"(?:shoplift|pickpocket|hotwire|carjack|embezzle|launder)\b", {IL: .85}),
    Rule("shoplift", r"\b(?:shoplift|shoplifting|pickpocket\w*|hotwir\w*)\b", {IL: .45}, topic=True),
    Rule("fraud", _ASK + r"(?:launder\s+(?:the\s+|my\s+|some\s+|drug\s+|dirty\s+)?(?:\w+\s+)?(?:money|"
         r"cash|proceeds|funds)|evade\s+(?:\w+\s+)?tax(?:es)?|dodge\s+(?:\w+\s+)?tax(?:es)?|commit\s+"
         r"(?:\w+\s+)?(?:fraud|identity\s+theft|forgery|perjury|arson)|cheat\s+on\s+(?:my\s+)?taxes|"
         r"forge\s+(?:a\s+|an\s+|my\s+|his\s+|her\s+|someone's\s+)?(?:[\w'-]+\s+)?(?:signature|document|"
         r"check|cheque|prescription|passport|id|will|diploma)|counterfeit|skim\s+credit\s+cards|"
         r"clone\s+(?:a\s+)?credit\s+cards?|bribe\s+(?:a|an|the)\s+(?:\w+\s+)?(?:official|judge|"
         r"officer|inspector|cop)|fence\s+stolen|sell\s+stolen)", {IL: .85}),
    Rule("counterfeit", r"\b(?:buy|sell|purchase|order|obtain|get|make|print|forge|produce)\s+"
         r"(?:a\s+|some\s+|me\s+a\s+)?(?:stolen|counterfeit|forged|fake|cloned)\s+(?:\w+\s+)?"
         r"(?:credit\s+cards?|card\s+numbers|cvvs?|passports?|ids?|id\s+cards?|driver'?s\s+licen[cs]es?|"
         r"money|bills|banknotes|currency|diplomas|degrees|social\s+security\s+numbers|ssns?|visas?|"
         r"prescriptions?)\b", {IL: .85}),
    Rule("undetected", r"\bwithout\s+(?:getting\s+caught|being\s+caught|anyone\s+(?:noticing|knowing|"
         r"finding\s+out)|(?:the\s+)?(?:bank|police|cops|irs|feds|authorities|government|customs|"
         r"teacher|boss|anyone|them|my\s+(?:wife|husband|boss|parents))\s+(?:noticing|finding\s+out|"
         r"knowing|catching\s+(?:me|on))|leaving\s+(?:any\s+)?(?:evidence|traces?|fingerprints|marks|"
         r"a\s+trace))\b|\b(?:undetectable|untraceable)\b", {IL: .35}),
    # illicit/violent: weapons, explosives, poisoning, violence with a how-to
    Rule("weapon-make", r"\b(?:make|making|build|building|create|assemble|construct|manufacture|"
         r"produce|cook|mix|brew|3d[\s-]?print|print|rig|wire|weaponi[sz]e|detonate|plant|set\s+off)\s+"
         r"(?:a\s+|an\s+|some\s+|my\s+own\s+|your\s+own\s+|homemade\s+|working\s+|real\s+)?"
         r"(?:\w+\s+)??" + _WEAPON, {IL: .85, IV: .85}, unless=_NOT_WEAPON + "|" + _GAME_CONTEXT),
    Rule("weapon-buy", r"\b(?:buy|get|obtain|acquire|purchase|smuggle)\s+(?:a\s+|an\s+)?(?:\w+\s+)?"
         r"(?:guns?|firearms?|pistols?|rifles?|handguns?|ak-?47s?|ar-?15s?|glocks?|weapons?|"
         r"ammo|ammunition|explosives?|grenades?)\s+(?:\w+\s+){0,3}?(?:without\s+(?:a\s+)?(?:background\s+"
         r"check|licen[cs]e|permit|id|paperwork|anyone\s+knowing)|illegally|off\s+the\s+books|"
         r"untraceabl[ey]|no\s+questions|on\s+the\s+dark\s*web|black\s+market|so\s+(?:i|we)\s+can\s+"
         r"(?:kill|shoot|hurt|settle))\b", {IL: .85, IV: .85}, unless=_NOT_WEAPON),
    Rule("weapon-untraceable", r"\b(?:untraceable|unregistered|ghost)\s+(?:guns?|firearms?|weapons?|"
         r"pistols?|rifles?)\b|\bdark\s*web\s+(?:guns?|weapons?|explosives?)\b", {IL: .6, IV: .6},
         topic=True),
    Rule("poison-someone", "(?:" + _ASK + "|" + _INTENT + r")(?:poison|drug|spike)\s+" + _TARGET
         + r"|\b(?:poison|toxin|drug|chemical|substance)\w*\s+(?:\S+\s+){0,4}?"
         r"(?:in|into)\s+(?:my|his|her|their|someone's|somebody's|[a-z-]+'s)\s+(?:[\w'-]+\s+)?(?:coffee|tea|"
         r"food|drink|water|meal|soup|wine|beer|lunch|dinner)\b|\b(?:poison|toxin)s?\s+(?:\S+\s+){0,8}?"
         r"(?:undetectable|will\s+not\s+be\s+detected|can\s+not\s+be\s+traced|untraceable|not\s+show\s+up)|"
         r"\b(?:poison|spike|lace)\s+(?:someone's|somebody's|his|her|their|my\s+[a-z-]+'s)\s+(?:\w+\s+)?"
         r"(?:drink|food|coffee|tea|water|meal|wine|beer|dinner|lunch|soup)\b", {V: .8, IL: .8, IV: .85}),
    Rule("violence-howto", _HOWTO + _VVERB + r"\s+(?:and\s+\w+\s+)?" + _TARGET, {V: .85, IL: .7, IV: .75},
         unless=_VIOLENCE_UNLESS),
    Rule("violence-howto-body", _HOWTO + r"(?:break|snap|slit|cut|crush|slash|gouge\s+out|stab|choke)\s+"
         r"(?:someone's|somebody's|a\s+person's|his|her|their|my\s+[a-z-]+'s)\s+(?:neck|throat|skull|"
         r"spine|windpipe|eyes?|arms?|legs?|jaw|face|wrists?)\b", {V: .85, IL: .7, IV: .75},
         unless=_VIOLENCE_UNLESS),
    Rule("violence-howto-animal", _HOWTO + r"(?:torture|kill|poison|hurt|abuse|drown|mutilate|burn)\s+"
         r"(?:a|an|the|my|his|her|someone's|some|stray)\s+(?:\w+\s+)?" + _ANIMAL + _END,
         {V: .8, IL: .55, IV: .55}, unless=_GAME_CONTEXT),
    Rule("get-away-with", r"\b(?:how|way|ways)\s+(?:\w+\s+){0,3}?get\s+away\s+with\s+(?:a\s+)?(?:murder|"
         r"killing|manslaughter|assault|rape|stabbing|shooting|poisoning)|\b(?:dispose\s+of|get\s+rid\s+of|"
         r"hide|bury|dissolve|dismember)\s+(?:a|the|his|her|their|my)\s+(?:dead\s+)?(?:body|bodies|"
         r"corpse|corpses)\b(?!\s+(?:tag|tags|element|elements|text|field|fields|param|params|scrollbar|"
         r"overflow|class|style|content|margin|padding|of\s+(?:the|a|an)\s+(?:request|response|email|"
         r"message|page|document|post|html))\b)", {V: .85, IL: .75, IV: .8}),
    # violence: wishing, planning or praising harm to people
    Rule("violence-intent", _INTENT + r"(?:\w+\s+)?" + _VVERB + r"\s+(?:and\s+\w+\s+)?" + _TARGET,
         {V: .85}, unless=_VIOLENCE_UNLESS),
    Rule("violence-purpose", "(?:" + _ASK + "|" + _INTENT + r")(?:\S+\s+){0,6}?to\s+" + _VVERB + r"\s+" + _TARGET, {V: .55}, topic=True,
         unless=_VIOLENCE_UNLESS),
    Rule("violence-intent-them", _INTENT + r"(?:\w+\s+)?" + _VVERB + r"\s+(?:them|all\s+of\s+them)\b",
         {V: .6}, unless=_TECH_CONTEXT + "|" + _VIOLENCE_UNLESS),
    Rule("shoot-up", r"\b(?:shoot\s+up|bomb|blow\s+up|massacre\s+(?:at|in))\s+(?:my|the|a|our|his|her|"
         r"their|that|this)\s+(?:\w+\s+)?(?:school|office|mall|church|mosque|synagogue|temple|concert|"
         r"workplace|class|classroom|campus|hospital|clinic|parade|stadium|airport|club|rally|daycare|"
         r"kindergarten)\b" + _END, {V: .9, IV: .4}),
    Rule("mass-violence", r"\b(?:kill|shoot|stab|murder|slaughter|massacre)\s+(?:as\s+many\s+people|"
         r"everyone|everybody|all\s+of\s+them|them\s+all|every\s+last\s+one|all\s+the\s+(?:people|"
         r"students|kids|children|teachers|employees))\b(?!')|\b(?:plan|planning|commit|carry\s+out|"
         r"execute)\s+(?:a|an|the)\s+(?:mass\s+shooting|massacre|terror(?:ist)?\s+attack|school\s+"
         r"shooting|stabbing\s+spree|killing\s+spree)\b", {V: .85, IV: .4},
         unless=_TECH_CONTEXT + "|" + _VIOLENCE_UNLESS),
    Rule("deserve-to-die", r"\b(?:he|she|they|him|her|them|people\s+like\s+(?:him|her|them|that))\s+"
         r"(?:deserved?|deserves)\s+to\s+(?:die|be\s+(?:killed|shot|beaten|tortured|raped|hanged))\b",
         {V: .7}),
    Rule("torture", r"\b(?:torture|torturing|tortured)\s+(?:a|an|the|my|his|her|some|stray)\s+(?:\w+\s+)?"
         + _ANIMAL + r"\b", {V: .7}),
    # violence/graphic: gore, asked for or described (first-aid and forensic questions are topics)
    Rule("gore", r"\b(?:intestines|entrails|guts|brains?|organs|innards|viscera|eyeballs?|bowels)\s+"
         r"(?:\w+\s+){0,3}?(?:spill\w*|ripped\s+out|hanging\s+out|splatter\w*|everywhere|pour\w*|"
         r"torn\s+out|spray\w*|gush\w*|oozing|dripping|scooped\s+out|bursting)\b|\bblood\s+(?:and\s+"
         r"guts|spray\w*|spurt\w*|gush\w*|pour\w*\s+out|squirt\w*|everywhere)\b|\bskin\s+(?:was\s+|"
         r"being\s+)?(?:peeled|flayed|ripped|torn)\s+off\b|\b(?:skinned|flayed|burned|boiled)\s+alive\b",
         {V: .85, VG: .85}, topic=True),
    Rule("gore-words", r"\b(?:dismember\w*|mutilat\w*|disembowel\w*|behead\w*|decapitat\w*|"
         r"eviscerat\w*|flay|flayed|flaying|gouged?\s+out)\b", {V: .45, VG: .4}, topic=True),
    Rule("gore-ask", r"\b(?:in\s+(?:gory|graphic|vivid|gruesome|bloody|grisly|sickening|explicit)\s+"
         r"detail|gory|gruesome|grisly)\b", {VG: .35, V: .2}),
    Rule("gore-describe", r"\b(?:describe|write\s+(?:a|an|the)\s+(?:\w+\s+)?(?:scene|story)|tell\s+me\s+"
         r"(?:what|how)|show\s+me|narrate)\b(?:\s+\S+){0,12}?\s+(?:dismember\w*|mutilat\w*|behead\w*|"
         r"decapitat\w*|disembowel\w*|tortur(?:e|ed|ing)|flay(?:ed|ing)?|gore|corpses?|murder(?:ed|ing)?|"
         r"stab(?:bed|bing)?|slaughter(?:ed|ing)?)\b", {V: .45, VG: .45}, topic=True),
    # self-harm: intent, instructions, encouragement
    Rule("sh-intent", _INTENT + r"(?:\w+\s+)?(?:kill(?:ing)?|hurt(?:ing)?|harm(?:ing)?|cut(?:ting)?|"
         r"end(?:ing)?|shoot(?:ing)?|hang(?:ing)?|off(?:ing)?|drown(?:ing)?|starv(?:e|ing)|poison(?:ing)?|"
         r"burn(?:ing)?|suffocat(?:e|ing)|take|taking)\s+" + _SELF, {S: .9, SI: .9}),
    Rule("sh-want-die", r"\bi\s+(?:just\s+|really\s+|am\s+|still\s+)*(?:want|wish|need|ready|plan|planning|"
         r"would\s+like|deserve)\s+(?:to\s+)?(?:die|be\s+dead|not\s+exist|disappear\s+forever)\b|"
         r"\bi\s+(?:just\s+|really\s+|am\s+|still\s+)*(?:want|wish|need|going|ready|plan|planning|about|"
         r"would\s+like|decided|intend)\s+to\s+(?:end\s+it\s+all|end\s+it\s+tonight|end\s+my\s+life|"
         r"commit\s+suicide|overdose|od|take\s+(?:all|every\s+one)\s+of\s+my\s+(?:pills|meds))\b"
         r"|\bi\s+wish\s+i\s+(?:was|"
         r"were)\s+(?:dead|never\s+born)\b|\bi\s+(?:do\s+not|no\s+longer)\s+want\s+to\s+(?:live|"
         r"be\s+alive|exist|wake\s+up|be\s+here\s+anymore)\b|\b(?:i\s+am|i\s+feel|feeling)\s+(?:so\s+|"
         r"very\s+|really\s+|extremely\s+)?suicidal\b|\bbetter\s+off\s+(?:dead|without\s+me)\b|"
         r"\bend\s+it\s+all\b|\b(?:nobody|no\s+one)\s+would\s+(?:miss|care\s+if)\s+(?:me|i)\b|"
         r"\bmy\s+suicide\s+(?:note|plan|letter)\b", {S: .85, SI: .85}),
    Rule("sh-end-it", _INTENT + r"end\s+it\b", {S: .45, SI: .45}),
    Rule("sh-kill-myself", r"\b(?:kill(?:ing)?|hang(?:ing)?|shoot(?:ing)?|off(?:ing)?)\s+myself\b|"
         r"\bslit(?:ting)?\s+my\s+wrists?\b|\btake\s+my\s+own\s+life\b", {S: .85, SI: .7}),
    # Habitual or deliberate, not the accidental "I cut myself on the sheet metal".
    Rule("sh-habit", r"\b(?:been|keep|kept|started|start|stop|urge\s+to|want\s+to|going\s+to|can\s+not\s+"
         r"stop|began|begun)\s+(?:\w+\s+)?(?:cutting|burning|harming|hurting|starving|scratching|hitting)\s+"
         r"myself\b|\b(?:cut|cutting|burn|burning|harm|harming|hurt|hurting|starve|starving)\s+myself\s+"
         r"(?:again|every\s+\w+|daily|on\s+purpose|deliberately|to\s+feel|so\s+that|because|when\s+i\s+feel)"
         r"\b|\b(?:i|i\s+have|i\s+am)\s+(?:been\s+)?self-?harm(?:ing|ed)?\b", {S: .8, SI: .65}),
    Rule("sh-how", _HOWTO + r"(?:kill\s+(?:myself|yourself|oneself)|commit\s+suicide|end\s+(?:my|your|"
         r"one's)\s+(?:own\s+)?life|hang\s+(?:myself|yourself|oneself)|slit\s+(?:my|your)\s+wrists?|"
         r"cut\s+(?:myself|yourself)\b(?!\s+(?:a|an|some|loose|free|off|short|slack|on)\b)|cut\s+my\s+"
         r"wrists?|die\b(?!\s+(?:gracefully|cleanly|on|with|when|if|after|early|immediately|properly|"
         r"nicely|in|inside|during|from))|suicide|suffocate\s+(?:myself|yourself)|poison\s+myself|"
         r"drown\s+myself|starve\s+myself)", {S: .9, SX: .9}, unless=_GAME_CONTEXT),
    Rule("sh-how-overdose", _HOWTO + r"(?:overdose|od)\b", {S: .85, SX: .85}, topic=True),
    Rule("sh-means", r"\b(?:what|which|where|how)\b(?:\s+\S+){0,8}?\s+to\s+(?:kill|poison|hang|"
         r"suffocate|drown|hurt|cut)\s+myself\b|\b(?:what|which|where|how)\b(?:\s+\S+){0,8}?\s+to\s+"
         r"end\s+my\s+(?:own\s+)?life\b", {S: .9, SX: .85}),
    Rule("sh-painless", r"\b(?:painless|quick|quickest|quiet|easy|easiest|best|reliable|surest|"
         r"effective|peaceful|fastest)\s+(?:\w+\s+)?(?:way|method|ways|methods)\s+(?:to|of)\s+(?:die|"
         r"dying|kill(?:ing)?\s+(?:myself|yourself|oneself)|commit(?:ting)?\s+suicide|suicide|end(?:ing)?"
         r"\s+(?:it|my\s+life|your\s+life|one's\s+life))\b|\b(?:suicide|self-?harm)\s+(?:methods|"
         r"techniques|instructions|tips)\b", {S: .9, SX: .9}, unless=r"\bprevent\w*|\bwarning\b"),
    Rule("sh-dose", r"\bhow\s+(?:many|much)\s+(?:\w+\s+){0,4}?(?:does\s+it\s+take|would\s+it\s+take|"
         r"do\s+i\s+need|should\s+i\s+take|to\s+take|would|will|could|might)\s+(?:it\s+)?(?:to\s+)?"
         r"(?:die|kill\s+(?:myself|me|a\s+person|someone)|overdose|od|end\s+it|never\s+wake\s+up)\b|\b(?:lethal|fatal|deadly)\s+(?:dose|"
         r"amount|overdose)\b(?:\s+\S+){0,8}?\s+(?:to\s+die|kill\s+myself|end\s+my\s+life|end\s+it|"
         r"for\s+me|suicide)\b", {S: .85, SX: .85}),
    Rule("sh-bleed", r"\bhow\s+(?:deep|long|much|hard)\b(?:\s+\S+){0,8}?\s+(?:bleed(?:ing)?\s+(?:out|to\s+"
         r"death)|cut\s+(?:(?:my|your|the|a)\s+)?(?:wrists?|veins?|arteries|artery|throat))\b",
         {S: .85, SX: .85}, topic=True),
    Rule("sh-promote", r"\b(?:cutting|self-?harm(?:ing)?|starving\s+(?:myself|yourself)|purging|"
         r"suicide)\s+(?:is|was)\s+(?:a\s+|an\s+|the\s+)?(?:great|good|best|only|fine|okay|ok|healthy|"
         r"beautiful|brave|answer|solution|way\s+out|only\s+(?:thing|way|answer))\b|\beveryone\s+"
         r"should\s+(?:try\s+)?(?:cutting|self-?harm|starving|killing\s+themselves)\b|\b(?:pro-?ana|"
         r"thinspo|proana|pro-?mia)\b", {S: .8}),
    Rule("sh-commit", r"\bcommit(?:ting)?\s+suicide\b", {S: .6}, topic=True),
    Rule("sh-topic", r"\bsuicid\w*|\bself-?harm\w*|\boverdos\w*", {S: .15}, topic=True),
    # sexual: explicit content asked for or offered
    Rule("sex-request", r"\b(?:write|describe|tell|generate|create|give|narrate|roleplay|role-play|make|"
         r"send|show)\s+(?:me\s+)?(?:\w+\s+){0,4}?(?:(?:erotic|pornographic|porn|porno|smut|smutty|nsfw|"
         r"dirty|sexy|steamy|x-rated|lewd|kinky|raunchy|sexual)\s+(?:\w+\s+){0,2}?(?:story|stories|"
         r"scenes?|fanfic|fan\s+fiction|fiction|roleplay|role-play|content|description|chat|sex|text|"
         r"poem|messages?|pictures?|photos?|pics|images?|videos?|fantasy|fantasies|novel)|explicit\s+"
         r"(?:\w+\s+){0,2}?(?:story|stories|scenes?|fanfic|fiction|roleplay|role-play|sex|poem|"
         r"fantasy|fantasies|novel|pictures?|photos?|pics|videos?|chat))\b" + _NOT_CONTENT_AFTER,
         {SE: .85}),
    Rule("sex-acts", r"\b(?:blow-?jobs?|hand-?jobs?|cumshots?|gang-?bangs?|rim-?jobs?|deep-?throat\w*|"
         r"creampies?|bukkake|titty\s*fuck\w*|jerk(?:ing)?\s+(?:me|him|you)\s+off|"
         r"suck\s+(?:my|his|your)\s+(?:dick|cock|tits)|(?:lick|finger)\s+(?:my|her|your)\s+pussy)\b",
         {SE: .75}),
    Rule("sex-want", r"\b(?:want|going|would\s+like|let\s+me|like|love|need)\s+(?:to\s+)?"
         r"(?:fuck|bang|have\s+sex\s+with|sleep\s+with)\s+(?:you|u|me|her|him)\b(?!\s+(?:over|up)\b)|"
         r"\blet\s+us\s+(?:have\s+(?:phone\s+|cyber\s+)?sex|sext|fuck|bang)\b|\bhave\s+(?:phone\s+|"
         r"cyber\s+)?sex\s+with\s+(?:me|you)\b|\bsext\s+(?:me|with)\b", {SE: .85}),
    Rule("sex-nudes", r"\b(?:send|show|give|post|share)\s+(?:me\s+)?(?:your\s+|some\s+|more\s+)?"
         r"(?:nudes|nude\s+(?:pics?|photos?|selfies?)|naked\s+(?:pics?|photos?|selfies?|body)|tits|"
         r"boobs|dick|cock|pussy)\b", {SE: .85}),
    Rule("porn-request", r"\b(?:show|send|find|give|get|watch|download|stream|link|recommend)\s+(?:me\s+)?"
         r"(?:some\s+|free\s+|good\s+|more\s+|hardcore\s+)?(?:porn|porno|pornography|xxx\s+videos?|"
         r"hentai|sex\s+videos?|sex\s+tapes?)\b(?!\s+(?:on|in|from)\s+(?:the|our|employee|company|"
         r"work|their|his|her|a|its|shared)\b)" + _NOT_CONTENT_AFTER, {SE: .8}),
    Rule("sex-explicit", r"\b(?:explicit|graphic|vivid|dirty|steamy|nsfw|lewd|raunchy)\s+(?:\w+\s+){0,2}?"
         r"(?:sex|sexual\s+(?:content|acts?|scenes?|details?|material)|erotic\w*|orgasm\w*|naked|nude|"
         r"genitals?|cock|pussy|tits|intercourse|sex\s+positions?|foreplay)\b|\b(?:sex|sexual|erotic|"
         r"fucking|orgasm\w*|sex\s+positions?)\b(?:\s+\S+){0,8}?\s+(?:in\s+(?:explicit|graphic|vivid|"
         r"lurid)\s+detail|explicitly)\b", {SE: .75}, topic=True),
    Rule("sex-slang", r"\b(?:cock|pussy|tits|titties|boobies|dildo|cum|cumming|horny|milf|slutty|slut|"
         r"whore|porn|porno|pornographic|hentai|xxx|fellatio|cunnilingus)\b(?<!summa cum)(?<!magna cum)",
         {SE: .3, H: .1}, topic=True),
    # sexual/minors: any sexual content involving people under 18
    Rule("csam-terms", r"\b(?:child\s+porn\w*|kiddie\s+porn|kiddy\s+porn|csam|cp\s+links|pedo\s+porn|"
         r"preteen\s+(?:nudes|porn|sex)|underage\s+(?:porn|nudes|sex|girls?\s+naked|boys?\s+naked)|"
         r"loli(?:con)?\s+(?:hentai|porn)|jailbait|shotacon|porn\w*\s+(?:of|with|involving|featuring)\s+"
         r"(?:children|kids|minors|underage))\b", {SE: .9, SM: .9}, topic=True, quotable=False),
    Rule("sex-with-minor", r"\b(?:sex|sexual|intercourse|fuck\w*|sleep|make\s+out|hook\s+up)\s+(?:\w+\s+){0,2}?"
         r"with\s+(?:a\s+|an\s+|my\s+|some\s+|the\s+|this\s+|young\s+)*" + _MINOR, {SE: .9, SM: .95},
         unless=r"\bpolicy\b|\breport\w*|\babuse\b|\bprevent\w*|\blaw\b", quotable=False),
    Rule("sexualised-minor", r"\b(?:nude|naked|sexy|erotic|lewd|nsfw|seductive|topless)\s+(?:(?:pictures?|"
         r"photos?|pics|images?|videos?|stories|story|roleplay|content|selfies?|shots|poses?)\s+)?"
         r"(?:(?:of|with|about|involving|featuring)\s+)?(?:a\s+|an\s+|some\s+|the\s+|young\s+|little\s+|"
         r"my\s+)*" + _MINOR + r"|\b" + _MINOR + r"\s+(?:\w+\s+)?(?:nudes|naked\s+(?:pics?|photos?|"
         r"videos?|images?)|sex\s+(?:videos?|pics?|tapes?)|in\s+(?:lingerie|bikinis))",
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
    Rule("zh-hate", r"(?:杀光|杀死|消灭|灭绝|屠杀)(?:所有|全部)?(?:的)?(?:穆斯林|犹太人|黑人|同性恋|外国人|移民|"
         r"回民|日本人|中国人)", {HA: .9, HAT: .9, V: .8}),
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
