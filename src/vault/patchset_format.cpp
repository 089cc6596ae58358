#include "vault/patchset_format.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>

namespace fv::vault {
namespace {

struct Cursor {
  std::span<const uint8_t> b;
  size_t i = 0;
  bool ok = true;

  bool at_end() const { return i >= b.size(); }
  uint8_t byte() {
    if (i >= b.size()) { ok = false; return 0; }
    return b[i++];
  }
  uint64_t fixed64() {  // a field's 8 bytes, big-endian
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | byte();
    return v;
  }
  uint64_t varint() {  // SQLite's varint: 7 bits a byte, big-endian, the 9th byte whole
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) {
      const uint8_t c = byte();
      v = (v << 7) | (c & 0x7f);
      if (!(c & 0x80)) return v;
    }
    return (v << 8) | byte();
  }
  void skip(uint64_t n) {
    if (n > b.size() - std::min(i, b.size())) { ok = false; i = b.size(); return; }
    i += static_cast<size_t>(n);
  }
  // One field; its text when it is a text field (the key of a meta row).
  std::string field(bool want_text) {
    const uint8_t t = byte();
    switch (t) {
      case 0x00: case 0x05: return {};
      case 0x01: case 0x02: skip(8); return {};
      case 0x03: case 0x04: {
        const uint64_t n = varint();
        const size_t at = i;
        skip(n);
        if (!ok || !want_text || t != 0x03) return {};
        return std::string(reinterpret_cast<const char*>(b.data() + at), static_cast<size_t>(n));
      }
      default: ok = false; return {};
    }
  }
};

}  // namespace

Status walk_patchset(std::span<const uint8_t> in, const std::function<Status(const ChangeView&)>& fn) {
  Cursor c{in, 0, true};
  auto bad = [](const std::string& why) { return invalid_argument("malformed patchset: " + why); };
  if (in.empty()) return Status::ok();
  while (!c.at_end()) {
    const size_t header_begin = c.i;
    if (c.byte() != 'P') return bad("no table header at byte " + std::to_string(header_begin));
    const uint64_t ncol = c.varint();
    if (!c.ok || ncol == 0 || ncol > 2000) return bad("column count");
    std::vector<bool> pk(static_cast<size_t>(ncol));
    size_t npk = 0;
    for (size_t k = 0; k < pk.size(); ++k) {
      const uint8_t f = c.byte();  // 0, or the column's position in the primary key (1, 2, …)
      if (f > ncol) return bad("primary-key flags");
      pk[k] = f != 0;
      npk += f != 0;
    }
    if (!c.ok || npk == 0) return bad("primary-key flags");
    std::string table;
    for (uint8_t ch; c.ok && (ch = c.byte()) != 0;) table.push_back(static_cast<char>(ch));
    if (!c.ok || table.empty()) return bad("table name");
    const size_t header_end = c.i;
    int changes = 0;
    while (!c.at_end() && c.b[c.i] != 'P') {
      const size_t begin = c.i;
      const uint8_t op = c.byte();
      const uint8_t indirect = c.byte();
      if ((op != SQLITE_INSERT && op != SQLITE_UPDATE && op != SQLITE_DELETE) || indirect > 1 || !c.ok)
        return bad("change header in table " + table);
      std::string first_text;
      size_t field = 0;
      for (size_t col = 0; col < pk.size(); ++col) {
        if (op == SQLITE_DELETE && !pk[col]) continue;  // a delete carries its key only
        const uint8_t type = c.ok && !c.at_end() ? c.b[c.i] : 0xff;
        // Every field of an insert, and the key of an update or delete, is defined; a key is
        // never NULL (the session extension records no row whose key is).
        if (type == 0x00 && (op == SQLITE_INSERT || pk[col])) return bad("undefined field in table " + table);
        if (type == 0x05 && pk[col]) return bad("NULL key in table " + table);
        std::string text = c.field(field == 0);
        if (field++ == 0) first_text = std::move(text);
        if (!c.ok) return bad("record in table " + table);
      }
      ++changes;
      FV_RETURN_IF_ERROR(fn(ChangeView{table, op, header_begin, header_end, begin, c.i, first_text}));
    }
    if (changes == 0) return bad("table " + table + " has no change");
  }
  return Status::ok();
}


namespace {

// SQLite's varint (sqlite3PutVarint): 7 bits a byte, big-endian, a 9th byte taking 8 bits.
void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  if (v > 0x00ffffffffffffffULL) {
    uint8_t b[9];
    b[8] = static_cast<uint8_t>(v);
    v >>= 8;
    for (int k = 7; k >= 0; --k) {
      b[k] = static_cast<uint8_t>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out.insert(out.end(), b, b + 9);
    return;
  }
  uint8_t b[10];
  int n = 0;
  do {
    b[n++] = static_cast<uint8_t>((v & 0x7f) | 0x80);
    v >>= 7;
  } while (v != 0);
  b[0] &= 0x7f;
  for (int k = n - 1; k >= 0; --k) out.push_back(b[k]);
}

void put_fixed64(std::vector<uint8_t>& out, uint64_t v) {
  for (int k = 7; k >= 0; --k) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

}  // namespace

Result<std::vector<PatchChange>> decode_patchset(std::span<const uint8_t> in, bool blob_bytes) {
  std::vector<PatchChange> out;
  FV_RETURN_IF_ERROR(walk_patchset(in, [&](const ChangeView& v) -> Status {
    PatchChange ch;
    ch.table = v.table;
    ch.op = v.op;
    Cursor h{in.subspan(0, v.header_end), v.header_begin + 1, true};
    const uint64_t ncol = h.varint();
    for (uint64_t k = 0; k < ncol; ++k) ch.pk.push_back(h.byte());
    Cursor c{in.subspan(0, v.end), v.begin + 2, true};
    for (size_t col = 0; col < ch.pk.size(); ++col) {
      PatchField& f = ch.fields.emplace_back();
      if (v.op == SQLITE_DELETE && !ch.pk[col]) continue;
      f.type = static_cast<PatchField::Type>(c.byte());
      switch (f.type) {
        case PatchField::Type::kInteger: f.integer = static_cast<int64_t>(c.fixed64()); break;
        case PatchField::Type::kReal: {
          const uint64_t bits = c.fixed64();
          std::memcpy(&f.real, &bits, sizeof bits);
          break;
        }
        case PatchField::Type::kText:
        case PatchField::Type::kBlob: {
          const uint64_t n = c.varint();
          if ((f.type == PatchField::Type::kText || blob_bytes) && n <= c.b.size() - std::min(c.i, c.b.size()))
            f.bytes.assign(reinterpret_cast<const char*>(c.b.data() + c.i), static_cast<size_t>(n));
          c.skip(n);
          break;
        }
        default: break;
      }
    }
    if (!c.ok || !h.ok) return invalid_argument("malformed patchset: a change of table " + v.table);
    out.push_back(std::move(ch));
    return Status::ok();
  }));
  return out;
}

Result<std::vector<uint8_t>> encode_patchset(const std::vector<PatchChange>& changes) {
  std::vector<uint8_t> out;
  const PatchChange* last = nullptr;
  for (const PatchChange& ch : changes) {
    const std::string what = "cannot encode a change of table " + ch.table + ": ";
    if (ch.table.empty() || ch.pk.size() != ch.fields.size() || ch.pk.empty())
      return invalid_argument(what + "no columns, or key flags and fields of different lengths");
    if (std::none_of(ch.pk.begin(), ch.pk.end(), [](uint8_t p) { return p != 0; })) return invalid_argument(what + "no key");
    if (ch.op != SQLITE_INSERT && ch.op != SQLITE_UPDATE && ch.op != SQLITE_DELETE) return invalid_argument(what + "operation");
    if (!last || last->table != ch.table || last->pk != ch.pk) {
      out.push_back('P');
      put_varint(out, ch.pk.size());
      out.insert(out.end(), ch.pk.begin(), ch.pk.end());
      out.insert(out.end(), ch.table.begin(), ch.table.end());
      out.push_back(0);
    }
    last = &ch;
    out.push_back(static_cast<uint8_t>(ch.op));
    out.push_back(0);  // direct
    for (size_t col = 0; col < ch.fields.size(); ++col) {
      if (ch.op == SQLITE_DELETE && !ch.pk[col]) continue;
      const PatchField& f = ch.fields[col];
      if (f.type == PatchField::Type::kUndefined && (ch.op == SQLITE_INSERT || ch.pk[col]))
        return invalid_argument(what + "an undefined key or inserted field");
      if (f.type == PatchField::Type::kNull && ch.pk[col]) return invalid_argument(what + "a NULL key");
      out.push_back(static_cast<uint8_t>(f.type));
      switch (f.type) {
        case PatchField::Type::kInteger: put_fixed64(out, static_cast<uint64_t>(f.integer)); break;
        case PatchField::Type::kReal: {
          uint64_t bits = 0;
          std::memcpy(&bits, &f.real, sizeof bits);
          put_fixed64(out, bits);
          break;
        }
        case PatchField::Type::kText:
        case PatchField::Type::kBlob:
          put_varint(out, f.bytes.size());
          out.insert(out.end(), f.bytes.begin(), f.bytes.end());
          break;
        default: break;
      }
    }
  }
  return out;
}

}  // namespace fv::vault
