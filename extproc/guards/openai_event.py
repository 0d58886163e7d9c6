"""The shape of OpenAI's common stream event, a content delta of one choice, as regular
expressions: the masking reframer's fast path (`reframe.SSEMaskingReframer._openai_text`)
reads such an event's text without parsing the rest of it."""

from __future__ import annotations

import re

from ..providers.openai import DELTA_TEXT_FIELDS

# The event when it is written the way `stops._dump`
# writes it: compact, strings without escapes, integers only (outside the text), one choice
# with no finish_reason, every value but the choices and the delta a scalar, and no other
# text in the delta (a refusal or reasoning field is null if there). Then the masked text
# spliced into the data is exactly what parsing, masking and re-encoding would give.
_STR = r'"[^"\\\x00-\x1f]*"'
_SCALAR = r'(?:"[^"\\\x00-\x1f]*"|0|-?[1-9][0-9]{0,17}|true|false|null)'
_MEMBER = rf'{_STR}:{_SCALAR}'
_OTHER_TEXT = "|".join(f for f in DELTA_TEXT_FIELDS if f != "content")
# a delta member the slow path would not read: the role, a text field that is null, or
# another key whose value is no string (the slow path reads the strings of a delta field it
# does not know, so one holding a string leaves the fast path)
_NUMBER = r'(?:0|-?[1-9][0-9]{0,17}|true|false|null)'
_DELTA_MEMBER = (rf'(?:"role":{_SCALAR}'
                 rf'|"(?!(?:content|role|{_OTHER_TEXT})")[^"\\\x00-\x1f]*":{_NUMBER}'
                 rf'|"(?:{_OTHER_TEXT})":null)')
_TEXT = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
# an event member outside the choices: no side text (`side_texts`: an error, a feedback)
_TOP_MEMBER = (rf'"(?!(?:error|type|stop_details|promptFeedback|prompt_feedback)")'
               rf'[^"\\\x00-\x1f]*":{_SCALAR}')
OPENAI_TEXT = re.compile(
    rf'\{{(?:{_TOP_MEMBER},)*"choices":\[\{{"index":(0|[1-9][0-9]{{0,8}}),"delta":\{{'
    rf'(?:{_DELTA_MEMBER},)*"content":({_TEXT})(?:,{_DELTA_MEMBER})*\}}'
    rf'(?:,"finish_reason":null|,(?!"finish_reason"){_MEMBER})*\}}\](?:,{_TOP_MEMBER})*\}}')
TEXT_LITERAL = re.compile(_TEXT)
TEXT_LITERAL_BYTES = re.compile(_TEXT.encode())
STRINGS = re.compile(r'"([^"]*)"(:?)')  # in text without escapes: each string, ':' if a key
