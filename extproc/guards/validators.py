"""Validators of the built-in detectors' candidates (`detectors`): for a candidate a
pattern found, the length of the prefix that is the value it names (the whole candidate, a
shorter prefix, or 0 to reject it). Pure functions of the candidate: a Luhn check for card
numbers, the IBAN registry's lengths and mod-97 check, octet and address checks for IPs,
and the plausibility checks that keep prose and code from matching. Sans-IO."""

from __future__ import annotations

import ipaddress


def whole(ok: bool, c: str) -> int:
    return len(c) if ok else 0


def email(c: str) -> int:
    labels = c.rpartition("@")[2].split(".")
    return whole(all(not (x.startswith("-") or x.endswith("-")) for x in labels), c)


def phone(c: str) -> int:
    return whole(7 <= sum(ch.isdigit() for ch in c) <= 15, c)


#: a digit's value, and its value doubled as Luhn counts it (digits summed: 7 -> 14 -> 5),
#: as byte translations: the sums then run in C (`sum` of bytes), no Python step per digit
_LUHN_ONCE = bytes.maketrans(b"0123456789", bytes(range(10)))
_LUHN_TWICE = bytes.maketrans(b"0123456789", bytes((2 * d) % 9 if d not in (0, 9) else d
                                                    for d in range(10)))


def luhn(c: str) -> int:
    # bytes from the start: the separators go, the checks and the sums run in C
    raw = c.encode("ascii", "replace").translate(None, b" -")
    n = len(raw)
    if not 13 <= n <= 19 or not raw.isdigit():
        return 0
    # no card number starts with 0 (ISO/IEC 7812), and with 1 only UATP's 15 digits: a
    # millisecond timestamp (13 digits from 1) or a 64-bit id (18-19) is no card; nor is
    # one digit repeated
    first = raw[0]
    if first == 0x30 or (first == 0x31 and n != 15) or raw.count(first) == n:
        return 0
    total = sum(raw[::-2].translate(_LUHN_ONCE)) + sum(raw[-2::-2].translate(_LUHN_TWICE))
    return len(c) if total % 10 == 0 else 0


def ssn(c: str) -> int:
    area, group, serial = c.split("-")
    bad = area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000"
    return whole(not bad, c)


IBAN_LENGTHS: dict[str, int] = {x[:2]: int(x[2:]) for x in (  # the IBAN registry
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 "
    "IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 "
    "MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 "
    "SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30 "
).split()}


def iban(c: str) -> int:
    """The country's IBAN length (a grouped candidate may be cut at a group boundary, when an
    upper-case word follows it) and the mod-97 check."""
    want = IBAN_LENGTHS.get(c[:2])
    compact = c.replace(" ", "")
    if want is None or len(compact) < want:
        return 0
    if len(compact) > want:
        cut = [i for i, ch in enumerate(c) if ch != " "][want - 1] + 1
        if c[cut] != " ":
            return 0
        c, compact = c[:cut], compact[:want]
    number = int("".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4]))
    return whole(number % 97 == 1, c)


def ipv4(c: str) -> int:
    return whole(all(int(octet) <= 255 for octet in c.split(".")), c)


def ipv6(c: str) -> int:
    candidates = [c, c[:-1]] if c.endswith(":") and not c.endswith("::") else [c]
    for x in candidates:
        groups = [g for g in x.split(":") if g]
        if not (any(ch.isdigit() for ch in x) or len(groups) >= 4):
            continue  # '::', 'a::b', 'dead:beef': too likely to be prose or code
        try:
            ipaddress.IPv6Address(x)
        except ValueError:
            continue
        return len(x)
    return 0


def openai_key(c: str) -> int:
    body = c[3:]
    return whole(any(ch.isdigit() for ch in body) and any(ch.isalpha() for ch in body), c)
