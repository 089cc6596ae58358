// The SQLite session patchset format, read and written byte by byte (sqlite3session.c,
// "PATCHSET FORMAT"): per table a header ('P', varint column count, one PK byte per column (0,
// or its position in the key), NUL-terminated name), then its changes: op byte, indirect byte,
// one record (every column for INSERT and UPDATE, undefined ones as 0x00; the PK columns only
// for DELETE). A field is a type byte, then 8 bytes big-endian (integer, real), or a varint
// length and the bytes (text, blob), or nothing (undefined, NULL).
//
// SQLite applies patchsets itself (changeset.h). This file checks one strictly before SQLite
// reads it (SQLite 3.40's iterator loops forever on some truncated patchsets), and decodes and
// encodes changes, so that the cluster can restate what a message it erases from a stream wrote
// that outlives it (vault::restate_updates, ShardWriter::erase_messages_of_basis).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::vault {

// One change of a patchset, as walk_patchset() finds it: byte ranges of its table's header and
// of itself, its operation, and the text of its first field (a meta row's key).
struct ChangeView {
  const std::string& table;
  int op;
  size_t header_begin, header_end, begin, end;
  const std::string& first_text;
};

// Walks every change of a patchset, checking its structure strictly: what SQLite's own reader
// would accept, and nothing it may mishandle. Malformed input is kInvalidArgument.
Status walk_patchset(std::span<const uint8_t> in, const std::function<Status(const ChangeView&)>& fn);

// A field of a change's record.
struct PatchField {
  enum class Type : uint8_t { kUndefined = 0, kInteger = 1, kReal = 2, kText = 3, kBlob = 4, kNull = 5 };
  Type type = Type::kUndefined;
  int64_t integer = 0;
  double real = 0;
  std::string bytes;  // kText and kBlob (a blob's only when decode_patchset was asked for them)
};

struct PatchChange {
  std::string table;
  int op = 0;                      // SQLITE_INSERT, SQLITE_UPDATE or SQLITE_DELETE
  std::vector<uint8_t> pk;         // per column: 0, or its position in the primary key
  std::vector<PatchField> fields;  // per column; a DELETE's columns outside the key are kUndefined
};

// Every change, in patchset order. Unless `blob_bytes`, a blob field keeps its type and not its
// bytes: what only classifies a message needs keys and plain values, never its sealed contents.
Result<std::vector<PatchChange>> decode_patchset(std::span<const uint8_t> in, bool blob_bytes = false);

// The changes as a patchset (consecutive changes of one table under one header); what
// decode_patchset reads back. kInvalidArgument for a change the format cannot hold (no key,
// an undefined key or inserted field, fields and key flags of different lengths).
Result<std::vector<uint8_t>> encode_patchset(const std::vector<PatchChange>& changes);

}  // namespace fv::vault
