"""Rule-based PRE-annotation of PriMock57 doctor sentences.

This is the first pass of the annotation, not the label source: every
sentence it labels was then reviewed by the annotator and corrected in
``corrections.tsv`` (see README.md). The rules follow docs/labelling.md.
It is kept so the provenance of each label is traceable: ``rules`` vs
``reviewed-corrected``.

Only used at dataset-build time (python -m tools.training.behaviour_dataset).
"""

from __future__ import annotations

import re

from edge_agent.behaviours.jargon import JargonDetector

# Discourse markers that open many spoken sentences and carry no function.
_LEAD = re.compile(
    r"^(?:(?:and|so|but|um+|uh+|er+|erm|ok(?:ay)?|right|alright|all right|well|now|yeah|yes|no|fine|great|"
    r"good|sure|perfect|i see|oh|ah|mm+|mm-hm+|hmm+|just|then|also|sorry|lovely|excellent|cool|"
    r"brilliant)[\s,.]+)+",
)

_FILLER_WORDS = {
    "ok", "okay", "k", "yeah", "yep", "yes", "no", "um", "umm", "uh", "er", "erm", "right", "alright", "all",
    "mm", "mmm", "mm-hmm", "mm-hm", "mhm", "hmm", "uh-huh", "fine", "great", "sure", "good", "perfect", "so",
    "and", "oh", "ah", "cool", "lovely", "excellent", "brilliant", "then", "well", "i", "see", "nope", "yup",
    "ok-", "hm", "uhh", "mmhm", "sorry", "pardon", "huh",
}


def is_filler(text: str) -> bool:
    """True for sentences made only of back-channels and discourse markers."""
    toks = re.findall(r"[a-z][a-z'-]*", text.lower())
    return all(t.strip("-'") in _FILLER_WORDS or t in _FILLER_WORDS for t in toks)


def core(text: str) -> str:
    """Lower-cased sentence without leading discourse markers."""
    low = text.lower().strip()
    low = re.sub(r"\s+", " ", low)
    return _LEAD.sub("", low).strip(" ,.")


_AUX = r"(?:do|does|did|is|are|was|were|have|has|had|can|could|would|will|should|shall|may|might|any|anything|anyone|anybody|everything|just)"
_CLOSED_WH = (
    r"(?:how (?:many|much|long|often|old|far|frequently|regularly|bad|severe|high|soon|quickly)|when|where|whereabouts|which|who|whose|"
    r"what (?:is|'s|was) (?:your|the) (?:date|name|address|postcode|number|phone|age|weight|height|temperature|job|occupation|dose|score|first line)|"
    r"what(?:'s| is) your (?:date|name|age)|what (?:time|age|day|date|year|dose|number|colour|color|side|medications?|tablets?|medicines?|drugs?|job|type of|strength|percentage)|"
    r"what would you (?:rate|score|give)|on a scale|and your|what do you (?:do for (?:work|a living)|work (?:as|at))|what(?:'s| is) your (?:job|employment|occupation|email|diet|weight)|what are you studying|"
    r"what (?:is it|was it) (?:that )?you do|what (?:kind|type) of (?:pill|medication|tablets?)|what per time|what did you say|what tablets|what did you take|what have you take|what do you take|what are you on|"
    r"what is it that you drink|what drinks|what started first|what came first|how would you rate|what would you say|what problems|what else do you have in the family|what was the readings?|what did the gp|what was it|just tell me how old|"
    r"(?:could|can) you (?:just )?(?:tell|give) me (?:your|the first line|the)|tell me (?:whether|if)|what happens when you take|your (?:date|name|full name|address|postcode|first name))"
)
_OPEN_WH = (
    r"(?:how (?:can|may|could|are you|is (?:it|that|the|your|everything)|have you|has (?:it|this|that|the)|does (?:it|this|that|the)|do you|did (?:it|you|this|that|the)|would you|would|'s|is|about)|"
    r"what|why|in what way|tell me|describe|talk me through|walk me through|explain|"
    r"can you (?:tell me|describe|explain|talk|walk|say more|give me)|could you (?:tell me|describe|explain|talk|walk|say more|give me)|"
    r"would you (?:mind )?(?:telling|describing|explaining)|i'?d like (?:you )?to (?:hear|know)|let'?s hear)"
)


_TAG_CHECK = re.compile(r",\s*(?:ok|okay|yeah|alright|all right|right|yes)\s*\?\s*$", re.IGNORECASE)


_REPAIR = re.compile(r"^(?:sorry,? )?(?:what|what was that|what did you say|pardon|sorry what was that|and what|what,? sorry|sorry,? what)\W*$")


def is_question(text: str, c: str) -> bool:
    stripped = text.rstrip()
    if _REPAIR.match(c):
        return False  # a repair request ("sorry, what was that?") asks for no content
    if not stripped.endswith("?") and re.match(r"^(?:what|why)\b", c) and re.search(r"\b(?:i|we|they|it|that|there|you'?ve)\b", c[:45]):
        return False  # "what I'd like to do is ...": a statement
    if _TAG_CHECK.search(stripped) and len(c.split()) > 4:
        # "... we'll do that, OK?": a statement with a check tag, not a question,
        # unless the body itself is a question.
        body = _TAG_CHECK.sub("", stripped)
        if re.search(r"\b(?:if|give (?:me|us) a (?:call|ring)|i'?ll|we'?ll|i'?m going|we'?re going|i'?m gonna|we'?re gonna|i will|we will|i'?d|we'?d|i would|we would|i think|they'?ll|they will|you'?ll need|you should|you need|make sure|please|i can|we can|you can|what (?:i|we))\b", body.lower()):
            return is_question(body + ".", core(body))
        return True  # "no temperature, yeah?": checks a fact with the patient
    if stripped.endswith("?"):
        if re.match(r"^(?:what (?:i|we)\b|which (?:is|are|was|means|i|we|you|can|will|should)\b|(?:could|might|may) (?:just |possibly |also |well )?be\b)", c):
            return False
        return True
    if re.match(rf"^{_AUX}\b", c) and not re.match(r"^(?:just|anything|everything)\b", c) and (
        re.match(r"^(?:any|anything|anyone|anybody)\b", c)
        or re.match(r"^\w+(?:n't)? (?:you|i|we|it|he|she|they|there|that|this|these|those|your|the|any|anything|anyone|anybody|he|she|someone|anyone)\b", c)
    ) and not re.match(r"^(?:could|might|may|would|will|should)(?: just| possibly| also| well| probably)? be\b", c):
        return True
    if re.match(rf"^(?:{_OPEN_WH}|{_CLOSED_WH})\b", c) and not re.match(r"^(?:what (?:i|we|you'?ll|you will|you need|you should|happens|this means|that means|it means)\b|which (?:is|are|was|means|can|will|would|could|should|may|might)\b|how (?:it|this|that) works)", c):
        return True
    if re.search(r"\b(?:(?:could|can) (?:you|i) (?:please |just )?(?:tell me|confirm|give me|check) (?:your|the)|just to (?:confirm|check) (?:that|your|you))", c):
        return True
    return bool(re.search(r"\b(?:is that right|is that correct|am i right|isn'?t it|aren'?t you|didn'?t you|don'?t you|is it)\W*$", c))


def question_type(text: str, c: str) -> str | None:
    """"open" | "closed" | None (not a question)."""
    if re.match(r"^(?:tell me|talk me through|walk me through|describe)\b", c) or re.search(
        r"\b(?:tell me (?:a bit )?(?:more )?about|tell me more|in your own words)\b", c
    ):
        if not re.search(r"\btell me (?:your|if|whether)\b", c):
            return "open"
    if not is_question(text, c):
        return None
    # Yes/no-framed requests to narrate are open in function.
    if re.match(
        r"^(?:can|could|would) you (?:please )?(?:just )?(?:tell me (?:a bit |a little )?(?:more|about|how|what|why)|describe|explain|talk me|walk me|say (?:a bit )?more|go through|give me (?:an idea|a bit|some idea))",
        c,
    ):
        return "open"
    if not re.match(rf"^(?:{_AUX}|{_OPEN_WH}|{_CLOSED_WH})\b", c) and "," in c:
        tail = core(c.rsplit(",", 1)[1])
        if re.match(rf"^{_CLOSED_WH}\b", tail):
            return "closed"
        if re.match(rf"^{_OPEN_WH}\b", tail):
            return "open"
    # "What else ..." , "how are you" style open wh-questions vs fact-seeking wh-questions.
    if re.match(rf"^{_CLOSED_WH}\b", c):
        return "closed"
    if re.match(r"^what(?:'s| is| was)? (?:your|the) (?:date|name|postcode|address|number)", c):
        return "closed"
    if re.match(rf"^{_OPEN_WH}\b", c):
        return "open"
    return "closed"


def _has(c: str, pattern: str) -> bool:
    # Anchored alternatives (^) are tried on the marker-stripped core and, via the
    # caller's second argument, content ones on the full text as well.
    return re.search(pattern, c) is not None


EMPATHY = (
    r"i understand (?:it'?s|that|how|why|you)|sorry to hear|sorry you(?:'ve| have| are|'re)|sounds (?:really |very |quite |pretty )?(?:difficult|awful|horrible|terrible|painful|frightening|scary|worrying|stressful|tough|hard|distressing|upsetting|unpleasant|miserable|rough|challenging|frustrating|exhausting|concerning|uncomfortable)|"
    r"must (?:be|have been) (?:really |very |quite )?(?:difficult|hard|awful|horrible|frightening|scary|worrying|stressful|tough|painful|distressing|upsetting|frustrating|exhausting|uncomfortable|unpleasant|annoying)|"
    r"i can (?:only )?(?:imagine|understand|see (?:that|how|why))|(?:completely |totally |very )?understandable|that'?s (?:really |very )?(?:not nice|horrible|awful|rubbish|tough|hard|difficult|frustrating|a shame|unpleasant|unfortunate|upsetting|annoying)|"
    r"not (?:a )?nice (?:thing|to)|poor (?:you|thing)|i know (?:it'?s|this is|that'?s) (?:not|hard|difficult|a lot|worrying|scary)|you (?:must be|sound|seem) (?:really |very |quite )?(?:worried|anxious|upset|stressed|concerned|frustrated|scared|frightened|tired|fed up)|"
    r"(?:it'?s|that'?s) (?:completely |totally |perfectly )?(?:normal|natural|understandable) to (?:feel|be (?:worried|anxious|concerned|upset|scared))|i appreciate (?:it|that|this|how)|oh dear|oh no"
)
REASSURANCE = (
    r"(?:anything|a lot|much) to worry about|(?:don'?t|do not) need to worry|(?:don'?t|do not) think (?:this|it|that)(?:'s| is) (?:anything )?(?:dangerous|serious|worrying)|nothing alarming|no worry\b|mind at ease|over the worst|not going to do you any harm|(?:settle|clear) (?:down|up)? ?(?:in|within|over) (?:the next|a few)|(?:will|should|usually|normally|just) gets? better|(?:don'?t|do not|no need to|nothing to|not to) (?:be )?worr|(?:very|quite|really|extremely|incredibly|pretty) common|(?:usually|normally|generally|often|tends to|should) (?:settle|get better|go away|resolve|clear|improve|pass|recover|be fine|be ok)|"
    r"self[- ]limiting|nothing (?:serious|sinister|too serious|to be concerned)|not (?:anything )?(?:serious|sinister|dangerous|worrying|concerning)|reassur|you'?ll be (?:fine|ok|okay|alright|all right)|"
    r"(?:i'?m|i am) not (?:too |very |overly )?(?:worried|concerned)|good news|nothing (?:to worry|worrying)|(?:it'?s|that'?s) (?:nothing|not) (?:to worry|something to worry)|rest assured|"
    r"you'?re (?:in )?(?:good hands|doing (?:the right|all the right|really well|well))|(?:will|should) (?:be|feel) (?:fine|better|ok|okay)|(?:it'?s|that'?s|you did) (?:the )?right (?:thing|to)|(?:that'?s|it'?s) (?:a )?(?:good|great) (?:sign|thing)"
)
TEACH_BACK = (
    r"(?:tell|explain|say|repeat|summari[sz]e|run through|go through) (?:it |that |this |everything )?(?:back|(?:to me )?in your own words)|in your own words|"
    r"(?:make sure|check) (?:that )?i(?:'ve| have)? (?:explained|been clear|made (?:it|that|things) clear)|"
    r"(?:how|when) (?:are you going|will you|you'?re going|you'?ll|would you) (?:to )?(?:take|use|do|know|apply|tell)|what (?:are you going to|will you) (?:do|tell (?:them|your)|look out for|watch)|"
    r"what(?:'s| is) your understanding|what have you understood|what did you understand|tell me what (?:you'?ll|you will|you'?re going to|we(?:'ve| have)? (?:agreed|discussed|talked))|"
    r"(?:tell|explain) (?:to )?(?:me )?(?:how|when|what) you(?:'ll| will| are going to|'re going to)|how would you explain"
)
PARTNERSHIP = (
    r"(?:does )?(?:that|this) sound (?:all )?(?:ok|okay|alright|all right|reasonable|good|fair)|what do you (?:think|feel|reckon)|how do you feel about|(?:how|what) would you (?:like|prefer|feel)|would you (?:like|prefer|be (?:happy|ok|okay|keen|willing|comfortable|interested|open))|"
    r"are you (?:happy|ok|okay|keen|comfortable|willing|interested) (?:to|with|for|about|if)|does (?:that|this) (?:sound|seem) (?:ok|okay|good|alright|all right|reasonable|fair|like a (?:good |reasonable )?plan)|how does (?:that|this) sound|"
    r"(?:is|would) (?:that|this) (?:be )?(?:ok|okay|alright|all right|acceptable) (?:with|for) you|(?:we|us) (?:can|could) (?:decide|work out|choose|agree)|"
    r"(?:decide|work out|come up with|plan) (?:it |this |that |a plan )?together|let'?s (?:decide|agree|work out)|up to you|your (?:choice|call|decision|preference)|whichever (?:you|is your)|"
    r"(?:what|which) (?:option|would you rather|works (?:best )?for you)|(?:some|two|a few|different|other) options|any thoughts (?:on|about|as to)|what are your thoughts|(?:have|had) you (?:had )?any (?:thoughts|ideas) (?:about|as to|on) what|happy with (?:that|this|the plan)|"
    r"^(?:is|does) (?:that|this) (?:sound )?(?:ok|okay|alright|all right)(?: with you| for you)?\W*$|do you agree|(?:is|does) that (?:work|suit) for you|which (?:one )?would you prefer"
)
AGENDA = (
    r"(?:anything|something) (?:in particular |particularly |specifically )?(?:that )?(?:you(?:'re| are| were) )?(?:particularly |specifically )?(?:worried|concerned) about\W*$|(?:anything|something) (?:in particular )?(?:you were |you're |that you're )?hoping (?:i|we) (?:could|can|might)|^anything else,? (?:sir|madam|doctor|then|for today)\W*$|(?:any|some)(?:thing|one)? (?:else|other (?:things?|concerns?|issues?|problems?|worries|questions or concerns)) (?:(?:that )?(?:you|i)|to|today|at all|on your mind|you(?:'d| would) like|bothering|worrying)|"
    r"anything else (?:i can|we can|you wanted|you want|you'?d like|you would like|that'?s? (?:worrying|bothering|concerning|on your mind)|today|that you)|something else (?:you|that|to|today|i)|"
    r"(?:any|other) (?:other )?(?:concerns?|worries|issues|problems) (?:you|that|today|at all|to)|what else (?:can i|would you|did you|do you|is|are you|you)|"
    r"^(?:is there )?(?:anything|something) else\W*$|^anything else(?: at all| for me| today)?\W*$|anything else (?:i should know|you think i should|that you think)|"
    r"(?:is|was) there (?:anything|something) (?:else|in particular|specific) (?:you|that|i|to|today|on|bothering|worrying)|(?:other|more) things? (?:you|to) (?:wanted|want|would like|'d like) to (?:discuss|talk|mention|bring|address)"
)
ADVICE = (
    r"worth (?:using|buying|doing)|things (?:you can do|to do)|(?:i'?d|i would|i will|i'?ll) (?:probably |certainly |definitely |strongly |really )?(?:advise|recommend|suggest)|\brecommend(?:ed|ing)? (?:that|you|it|taking|using|doing|getting)|\badvisable\b|would be (?:beneficial|sensible|helpful|useful)|"
    r"\bdrink plenty\b|\bplenty of (?:fluids|rest|water)\b|\bget (?:plenty of |some )?(?:good |nice )?rest\b|\b(?:well[- ])?hydrated\b|\btime off work\b|i'?d like (?:you )?to (?:come|see)|give (?:me|us) a (?:call|ring)|look out for|keep an eye|(?:not )?a good idea|worth (?:coming|trying|taking|doing|getting|keeping|having|booking|seeing|speaking|calling)|get in touch|you (?:would|'d) need to|best course of action|highly recommend|give (?:us|me) a (?:call|ring)|"
    r"i'?d (?:really )?like (?:to see you|a gp|a doctor|someone|them) |\btake (?:it|them|these|this|one|two) |^(?:either|increase|wait|up|use|reduce|carry on|go ahead and)\b|you can (?:up|increase|reduce|stop|continue|have)|make an appointment|go straight to|"
    r"\bif\b.{0,100}\b(?:need to (?:talk|see|speak)|a and e|a&e|urgently|seen|get in touch|give us)|(?:i'?d|i would|i'?m going to|i will|i'?ll|i) (?:(?:strongly|really|definitely) )?(?:like you to|recommend|suggest|advise|encourage|want you to|ask you to|urge)|"
    r"you (?:should|need to|must|have to|ought to|might want to|may want to|want to make sure|could try|can try|might (?:like|wish) to|can (?:take|use|buy|get|go|call|ring|book|contact|come|try|drink))|"
    r"(?:make sure|try (?:to|and)|be sure to|remember to|don'?t forget|avoid|keep (?:taking|drinking|an eye|hydrated|yourself|up|on)|stay (?:hydrated|at home|off|away|in)|please (?:do|don'?t|take|call|ring|come|book|seek|go|contact|make|try|keep|use|drink|avoid|rest|let))|"
    r"(?:it'?s|it is|it would be|would be) (?:really |very |quite )?(?:important|best|a good idea|worth|sensible|advisable|wise|helpful|better) (?:to|that you|for you to|if you)|"
    r"^(?:drink|take (?!care)|keep|avoid|rest|stay|stop|come (?:back|in|and see)|call|ring|phone|book|go to|eat|use|try|get|seek|contact|let (?:us|me) know|cut|wash|wear|apply|monitor|continue|don'?t)\b|"
    r"(?:the best thing (?:to do|would be|is)|my (?:advice|recommendation|suggestion))|(?:come back|seek (?:medical )?(?:help|advice|attention)|call 999|call 111|go to a&e|go to the a&e|go to the emergency|go to a and e|contact us|book (?:an|another) appointment|see (?:your|a) (?:gp|doctor|pharmacist)) (?:if|immediately|straight away|urgently|as soon)|"
    r"\bif (?:it|things|this|that|the|your|you|symptoms|any|there)\b.{0,80}\b(?:come back|call|ring|contact|seek|go to|book|see (?:a|your|us))"
)
INFORMATION = (
    r"(?:may|might|will|would) need to (?:do|have|arrange|check|send|refer|take|get)|i wonder (?:whether|if)|(?:we|i) can (?:have|do|check|arrange|add|also add|give)|\brisk\b|\b(?:helps?|can help|will help)\b|(?:sounds|seems|looks) like|\b(?:could|might|may|would) (?:possibly |probably |well |also )?be (?:a|an|one|the|something|related|due|caused|linked|connected|from|because|what)\b|\bone of (?:two|a few|several) things|suspect|guidelines|first line|"
    r"\b(?:i'?ll|i will|we'?ll|we will|they'?ll|they will|we would|we'?d|i'?d|i would|i'?m going to|we'?re going to|i'?m gonna|we'?re gonna) (?:probably |also |just |then |usually |like to )?(?:be )?(?:send|do(?:ing)? (?:a|an|some|the|blood|tests)|check|prescrib|give you|arrang|refer|book|ask(?:ing)? for|request|organi[sz]|have a follow|try|start|sort)|"
    r"\b(?:referral|ultrasound|scan|x-?ray|blood tests?|bloods|examination|prescription|antibiotics?|steroids?|inhalers?|medications?|tablets?|treatment|dose|cream)\b|(?:should|will) (?:hopefully )?(?:control|treat|work|help)|lasts? (?:about|for|around)|(?:don'?t|doesn'?t|won'?t) help|suggestive of|(?:working |likely |the )?diagnosis is|i think (?:you(?:'ve| have)|it'?s|this is|that'?s|it could|it might|it may)|concerned about|rule out|(?:what|so what) (?:i|we) (?:can|could|will|'ll|'re going to|are going to|would|might) do is|"
    r"(?:we|i) (?:can|could|will|'ll) (?:do|arrange|organi[sz]e|book|send|refer|prescribe|give you|try|get|start|check|make you|see you)|(?:it |this |that )?(?:sounds|seems|looks) like (?:it(?:'s| is| could| might| may)|you(?:'ve| have| might| may|'re| are)|a |an |(?:a |an )?(?:infection|virus|viral|bug|condition|gastro))|"
    r"(?:most |more )?(?:likely|probably|possibly) (?:a |an |to be |it'?s |caused|due|what|that|the|you)|(?:could|might|may) be (?:a |an |due|caused|related|something|because|the|from|down to|linked)|"
    r"(?:is|are|was) (?:caused|due|related|linked|associated|a sign|a symptom|common in)|(?:caused|triggered) by|\b(?:infection|virus|viral|bacteria|bacterial|inflammation|condition|diagnosis|syndrome|disease|allergy|allergic)\b(?! (?:in your family|history))|"
    r"(?:your|the) (?:blood pressure|temperature|results?|tests?|scan|x-ray|bloods|blood test|levels?|heart rate|oxygen|sugar) (?:is|are|was|were|came|show|looks?|look|came back|seems?)|"
    r"(?:i'?m going to|i'?ll|i will|we'?ll|we will|i'?m gonna|we'?re going to|i can|i could|we can|we could) (?:(?:just |also |probably )?(?:prescribe|give you|send (?:you|off|a)|refer|arrange|organi[sz]e|book you|request|do (?:some|a|an)|check|start you|write|put you|get you|email|sign you|issue|order))|"
    r"(?:antibiotics?|medication|medicine|tablets?|treatment|inhaler|cream|drug|dose|course|painkillers?|paracetamol|ibuprofen|tests?) (?:will|should|can|would|might|may|is|are|works?|helps?)|side effects?|"
    r"what (?:this|that|it) means is|what happens is|the reason (?:is|why|for)|this is because|that'?s because|it'?s because|(?:because|as) (?:the|your|it|of the)|which means|that means|this means|"
    r"\b(?:usually|normally|generally|typically|tends to|often|commonly|sometimes) (?:(?:it|this|that|they|these|people|patients|symptoms)\b)|(?:the|your) (?:body|immune|stomach|bowel|gut|lungs?|heart|kidneys?|liver|bladder|skin|muscles?|nerves?|joints?) (?:is|are|can|will|gets?|makes?|produces?|tries|has)|"
    r"\b(?:in|within|over|after|for) (?:a few|a couple|two|three|four|five|seven|ten|\d+) (?:days|weeks|months)\b.{0,40}\b(?:settle|improve|better|clear|resolve|recover|work|kick in)|(?:should|will|can|may|might) (?:settle|improve|help|clear|resolve|kick in|ease|reduce|relieve|protect|prevent)"
)


def _overlap_reflection(c: str, prev_patient: str) -> bool:
    """A declarative sentence that reuses much of the patient's last turn."""
    stop = {
        "the", "a", "an", "and", "or", "to", "of", "in", "on", "it", "is", "was", "i", "you", "your", "my", "that",
        "this", "so", "um", "uh", "yeah", "ok", "okay", "just", "like", "be", "been", "have", "has", "had", "for",
        "with", "at", "but", "no", "yes", "do", "did", "not", "me", "are", "its", "it's", "i'm", "you're", "you've",
        "i've", "any", "some", "all", "very", "really", "quite", "bit", "right",
    }
    words = [w for w in re.findall(r"[a-z']+", c) if w not in stop]
    if len(words) < 3:
        return False  # short echoes are acknowledgements, not reflections (labelling guide)
    pw = set(re.findall(r"[a-z']+", prev_patient.lower()))
    shared = sum(1 for w in words if w in pw)
    return shared >= 2 and shared / len(words) >= 0.6


REFLECTION = (
    r"^(?:you(?:'ve| have|'re| are| were| had| noticed| felt| feel| get| don'?t| didn'?t| haven'?t| take| work| live| do| went)|your (?:\w+ )?(?:\w+ )?(?:is|are|has|have|was|were|hasn'?t|haven'?t)|there'?s no|no (?:\w+ ){1,3}(?:or|and|,) ?(?:no )?\w+)\b|^so (?:you(?:'ve| have|'re| are| were| had| said| mentioned| feel| get|'d| don'?t| didn'?t| can| can'?t| haven'?t)|it(?:'s| has| was|'s been| sounds)|the |your |that'?s |this |there|just to|to (?:summari|recap))|"
    r"you (?:also |just |had )?(?:mentioned|said|told me|described|were saying|noticed that|explained|'ve mentioned|have mentioned|'ve said|have said|'ve told|mention)|(?:just )?to (?:summari[sz]e|recap|sum up)|if i(?:'ve| have)? (?:understood|got (?:this|that|it))|"
    r"(?:it )?sounds like (?:you(?:'ve| have|'re| are)|it(?:'s| has| is)|the|things|your)|what i'?m hearing|let me (?:just )?(?:check|make sure) i(?:'ve| have)? (?:got|understood)"
)


def preannotate(text: str, prev_patient: str, jargon: JargonDetector, next_text: str = "", prev_text: str = "") -> set[str]:
    c = core(text)
    low = re.sub(r"\s+", " ", text.lower().strip())
    labels: set[str] = set()
    if re.search(r"\btake care\b", c) and len(c.split()) <= 5:
        return set()  # a farewell
    c_adv = re.sub(r"(?:don'?t|do not|no need to|not to) (?:be )?worr\w*|need to worry", "", c)
    qt = question_type(text, c)
    if qt:
        labels.add(f"{qt}_question")
    if (_has(c, AGENDA) or _has(low, AGENDA)) and not _has(c, r"symptom|medical|health|medication|allerg|problems? with|condition|pain|tablets|family|drugs|else in the|anyone else|else at home|(?:anything|something) else (?:like|such|with|for the|about the|going on with)"):
        labels.add("agenda_solicitation")
    if _has(c, EMPATHY) or _has(low, EMPATHY):
        labels.add("empathy")
    if _has(c, REASSURANCE) or _has(low, REASSURANCE):
        labels.add("reassurance")
    if _has(c, TEACH_BACK) or _has(low, TEACH_BACK):
        labels.add("teach_back")
        labels.discard("closed_question")
        labels.add("open_question")
    if _has(c, PARTNERSHIP) or _has(low, PARTNERSHIP):
        labels.add("partnership")
    if not qt:
        if _has(c_adv, ADVICE):
            labels.add("advice")
        if _has(c, INFORMATION) and not re.search(r"\b(?:ask you|questions|notes|examine you now|write)\b", c):
            labels.add("information")
        modal = re.match(r"^you (?:can|should|need|will|'ll|might|may|could|must|want)\b", c)
        if not modal and "advice" not in labels and len(c.split()) > 2 and (_has(c, REFLECTION) or _has(low, REFLECTION) or _overlap_reflection(c, prev_patient)):
            labels.add("reflection")
    else:
        # "You mentioned X, is that right?" restates and checks.
        # A declarative check of what the patient said ("So you've had a cough for a week?") restates it.
        if _has(c, r"\byou (?:mentioned|said|told me|were saying)\b") or _has(
            low, r"^(?:\W*(?:ok(?:ay)?|right|um+|uh+|and|yeah|alright|all right|fine)\W+)*so,? (?:you(?:'ve| have|'re| are| were| had| don'?t| didn'?t| haven'?t| get| feel)|your |it(?:'s| is| was| has)|the |there'?s no|no )"
        ) or (not re.match(rf"^{_AUX}\b", c) and re.match(r"^(?:you(?:'ve| have|'re| are| were| had)|your )", c) and text.rstrip().endswith("?")):
            labels.add("reflection")
    if jargon.has_unexplained(text, next_text=next_text, prev_text=prev_text):
        labels.add("jargon")
    return labels
