"""The verifiable audit log's public toolkit: everything needed to build or check it.

A venue's audit log is an RFC 9162 Merkle tree over canonical JSON entries, published
through C2SP signed checkpoints and ``.tlog-proof`` files. The gateway builds the log
with these names, and anyone holding the venue's public key checks it with the same ones,
offline and with the standard library only:

    entries      :func:`canonical_json`, :func:`leaf_hash`
    the tree     :func:`node_hash`, :func:`fold`, :func:`subtrees`, :func:`inclusion_ranges`,
                 :func:`consistency_ranges`, :class:`CompactTree`, :func:`root_of`
    formats      :class:`Checkpoint`, :class:`NoteSignature`, :func:`format_note`,
                 :class:`TlogProof`, :class:`TrustedKey`, :func:`key_id`, :func:`verifier_key`
    exports      :data:`EXPORT_FORMAT`, the first line of an ``agenitry export`` file
    checks       :func:`verify_event`, :func:`verify_proof`, :func:`verify_log`,
                 :func:`verify_inclusion`, :func:`verify_consistency`, :func:`open_checkpoint`

>>> from agenitry.transparency import leaf_hash, root_of
>>> root_of([leaf_hash(b"a")]) == leaf_hash(b"a")
True

The code lives in core's private modules; this module only names what is public, so
the gateway, the CLI and third-party verifiers share one implementation.
"""

from agenitry._canonical import canonical_json, leaf_hash
from agenitry._merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactTree,
    Node,
    Range,
    consistency_ranges,
    fold,
    inclusion_ranges,
    node_hash,
    root_of,
    subtrees,
    verify_consistency,
    verify_inclusion,
)
from agenitry._tlog import (
    PROOF_HEADER,
    Checkpoint,
    LogFormatError,
    NoteSignature,
    TlogProof,
    TrustedKey,
    b64decode,
    b64encode,
    check_key_name,
    format_note,
    key_id,
    open_checkpoint,
    verifier_key,
)
from agenitry._verify import (
    EXPORT_FORMAT,
    Finding,
    Keys,
    LogReport,
    VerificationResult,
    verify_event,
    verify_log,
    verify_proof,
)

__all__ = [
    "EMPTY_ROOT",
    "EXPORT_FORMAT",
    "HASH_SIZE",
    "PROOF_HEADER",
    "Checkpoint",
    "CompactTree",
    "Finding",
    "Keys",
    "LogFormatError",
    "LogReport",
    "Node",
    "NoteSignature",
    "Range",
    "TlogProof",
    "TrustedKey",
    "VerificationResult",
    "b64decode",
    "b64encode",
    "canonical_json",
    "check_key_name",
    "consistency_ranges",
    "fold",
    "format_note",
    "inclusion_ranges",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "root_of",
    "subtrees",
    "verifier_key",
    "verify_consistency",
    "verify_event",
    "verify_inclusion",
    "verify_log",
    "verify_proof",
]
