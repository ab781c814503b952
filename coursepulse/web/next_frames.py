"""The bytes of graphql-transport-ws `next` messages, made from JSON their subscribers share.

A live event's result is encoded once (web/graphql_view.py `EncodedResults`); what differs
between its thousands of subscribers is the operation id at the start of each message.
"""

import json
import struct

#: A websocket frame's header: FIN and the opcode, then the length in 7, 7+16 or 7+64 bits.
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack
_FIN_TEXT = 0x81
#: What closes a `next` message after its data.
TAIL = b"}}"


def next_head(operation_id: str) -> bytes:
    """The start of an operation's `next` messages, up to their data, as UTF-8."""
    return b'{"id":%s,"type":"next","payload":{"data":' % json.dumps(operation_id).encode()


def websocket_frame(head: bytes, rest: bytes) -> bytes:
    """The text message `head` + `rest` as a whole websocket frame the way a server sends
    one: unmasked, uncompressed, in one piece (RFC 6455, 5.2). For the subscribers of one
    result, `rest` (its JSON data and `TAIL`) is made once and only the head
    (`next_head`) is their own."""
    length = len(head) + len(rest)
    if length < 126:
        header = _SHORT(_FIN_TEXT, length)
    elif length < 65536:
        header = _MEDIUM(_FIN_TEXT, 126, length)
    else:
        header = _LONG(_FIN_TEXT, 127, length)
    return header + head + rest
