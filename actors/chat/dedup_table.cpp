#include "switchboard/actors/chat/dedup_table.hpp"

#include <bit>
#include <cstring>
#include <functional>

namespace switchboard::actors {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase too: "AB" and "ab" are different ids
}

}  // namespace

DedupTable::Entry DedupTable::shape(const Key& key, std::string& scratch) const {
  Entry e;
  e.room = key.room;
  e.user = key.user;
  const std::string_view id = key.client_msg_id;
  bool hex = id.size() % 2 == 0 && id.size() <= 32 && !id.empty();
  for (std::size_t i = 0; hex && i < id.size(); ++i) hex = hex_digit(id[i]) >= 0;
  if (hex) {
    e.kind = kHex;
    e.size = static_cast<std::uint8_t>(id.size());
    for (std::size_t i = 0; i < id.size(); i += 2)
      e.id.bytes[i / 2] = static_cast<unsigned char>(hex_digit(id[i]) * 16 + hex_digit(id[i + 1]));
  } else if (id.size() <= sizeof e.id.bytes) {
    e.kind = kInline;
    e.size = static_cast<std::uint8_t>(id.size());
    std::memcpy(e.id.bytes, id.data(), id.size());
  } else {
    e.kind = kArena;
    e.size = 0;
    scratch.assign(id);
    e.id.arena = {0, static_cast<std::uint32_t>(id.size())};
  }
  return e;
}

std::string_view DedupTable::id_of(const Entry& e, const std::string& scratch) const {
  if (e.kind == kArena) return std::string_view(scratch).substr(e.id.arena.offset, e.id.arena.size);
  return {reinterpret_cast<const char*>(e.id.bytes), e.kind == kHex ? e.size / 2u : e.size};
}

bool DedupTable::same(const Entry& a, const std::string& a_scratch, const Entry& b) const {
  return a.room == b.room && a.user == b.user && a.kind == b.kind && a.size == b.size &&
         id_of(a, a_scratch) == id_of(b, arena_);
}

std::uint64_t DedupTable::hash(const Entry& e, const std::string& scratch) const {
  // An id kept in its entry is at most 16 bytes, zero beyond its size: two words, mixed
  // (the multiply-xorshift of splitmix64). A longer one is hashed whole.
  std::uint64_t a = 0, b = 0;
  if (e.kind == kArena) {
    a = std::hash<std::string_view>{}(id_of(e, scratch));
  } else {
    std::memcpy(&a, e.id.bytes, 8);
    std::memcpy(&b, e.id.bytes + 8, 8);
  }
  std::uint64_t h = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
  h ^= ((std::uint64_t{e.room} << 32) | e.user) * 0x94d049bb133111ebULL;
  h ^= (std::uint64_t{e.kind} << 8 | e.size) + (h >> 29);
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 31;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 32);
}

DedupTable::Probe DedupTable::locate(const Entry& e, const std::string& scratch, std::uint64_t h) const {
  const std::size_t mask = index_.size() - 1;
  std::size_t slot = h & mask;
  for (; index_[slot] != 0; slot = (slot + 1) & mask)
    // A slot whose tag differs is not it: its entry is not even looked at.
    if (tag_matches(index_[slot], h) && same(e, scratch, ring_[at_of(index_[slot])])) return {slot, kNoSlot};
  return {kNoSlot, slot};
}

std::optional<DedupTable::Seen> DedupTable::find(const Key& key) const {
  if (index_.empty()) return std::nullopt;
  std::string scratch;
  const Entry probe = shape(key, scratch);
  const Probe where = locate(probe, scratch, hash(probe, scratch));
  if (where.found == kNoSlot) return std::nullopt;
  const Entry& e = ring_[at_of(index_[where.found])];
  return Seen{e.seq(), base_ms_ + e.ts, (e.flags & kOnItsWay) != 0};
}

DedupTable::Claimed DedupTable::claim(const Key& key, std::uint64_t ts_ms) {
  // One shape, one hash and one probe: a new key goes in the free slot its probe ended on.
  std::string scratch;
  Entry probe = shape(key, scratch);
  std::uint64_t h = 0;
  std::size_t free_slot = kNoSlot;
  if (!index_.empty()) {
    h = hash(probe, scratch);
    const Probe where = locate(probe, scratch, h);
    if (where.found != kNoSlot) {
      const std::size_t at = at_of(index_[where.found]);
      const Entry& e = ring_[at];
      // The claim of one on its way is its number, which its retries wait on.
      const Claim number = head_number_ + ((at - head_) & (ring_.size() - 1));
      return {number, Seen{e.seq(), base_ms_ + e.ts, (e.flags & kOnItsWay) != 0}};
    }
    free_slot = where.free;
  }
  const Claim number = head_number_ + count_;
  probe.flags = kOnItsWay;
  append(probe, scratch, ts_ms, h, free_slot);
  return {number, std::nullopt};
}

void DedupTable::settle(Claim claim, std::uint64_t seq, std::uint64_t ts_ms) {
  const std::size_t at = at_number(claim);
  Entry& e = ring_[at];
  e.flags = 0;
  if (seq >> 40) return kill(at);  // past any room's seqs in practice: not remembered
  e.seq_low = static_cast<std::uint32_t>(seq);
  e.seq_high = static_cast<std::uint8_t>(seq >> 32);
  if (ts_ms >= base_ms_ && ts_ms - base_ms_ <= 0xFFFF'0000ULL) e.ts = static_cast<std::uint32_t>(ts_ms - base_ms_);
}

void DedupTable::drop(Claim claim) {
  const std::size_t at = at_number(claim);
  ring_[at].flags = 0;
  if (ring_[at].kind != kDead) kill(at);
}

void DedupTable::insert(const Key& key, std::uint64_t seq, std::uint64_t ts_ms) { add(key, seq, ts_ms, true); }

void DedupTable::insert_new(const Key& key, std::uint64_t seq, std::uint64_t ts_ms) { add(key, seq, ts_ms, false); }

void DedupTable::add(const Key& key, std::uint64_t seq, std::uint64_t ts_ms, bool may_be_there) {
  std::string scratch;
  Entry e = shape(key, scratch);
  if (seq >> 40) return;  // past any room's seqs in practice (a trillion): not remembered
  e.seq_low = static_cast<std::uint32_t>(seq);
  e.seq_high = static_cast<std::uint8_t>(seq >> 32);
  // Remembered already (a copy installed, a replica's entry applied twice): forgotten first.
  if (may_be_there && !index_.empty())
    if (const Probe where = locate(e, scratch, hash(e, scratch)); where.found != kNoSlot) {
      const std::size_t at = at_of(index_[where.found]);
      if (ring_[at].flags & kOnItsWay) return;  // its claim decides
      kill(at);
    }
  append(e, scratch, ts_ms, 0, kNoSlot);
}

void DedupTable::append(Entry e, const std::string& scratch, std::uint64_t ts_ms, std::uint64_t h,
                        std::size_t free_slot) {
  if (count_ == 0 && live_ == 0) base_ms_ = ts_ms;
  if (ts_ms < base_ms_) ts_ms = base_ms_;  // a clock stepped back: kept with the oldest
  if (ts_ms - base_ms_ > 0xFFFF'0000ULL) {
    rebase(ts_ms);
    free_slot = kNoSlot;  // entries forgotten: the index moved
  }
  e.ts = static_cast<std::uint32_t>(ts_ms - base_ms_);
  if (e.kind == kArena) {
    e.id.arena.offset = static_cast<std::uint32_t>(arena_.size());
    arena_ += scratch;
    arena_live_ += scratch.size();
  }
  if (count_ == ring_.size()) {
    grow();
    free_slot = kNoSlot;  // re-indexed
  }
  const std::size_t at = (head_ + count_) & (ring_.size() - 1);
  ring_[at] = e;
  ++count_;
  ++live_;
  if (free_slot != kNoSlot && (live_ + 1) * 2 <= index_.size()) index_[free_slot] = slot_value(at, h);
  else index(at);
}

void DedupTable::expire(std::uint64_t oldest_ms, std::size_t max_entries) {
  while (count_ > 0) {
    Entry& front = ring_[head_];
    if (front.flags & kOnItsWay) break;  // on its way: its claim holds its place
    if (front.kind != kDead && live_ <= max_entries && base_ms_ + front.ts >= oldest_ms) break;
    if (front.kind != kDead) kill(head_);
    head_ = (head_ + 1) & (ring_.size() - 1);
    ++head_number_;
    --count_;
  }
  if (arena_.size() > 4096 && arena_live_ < arena_.size() / 2) compact_arena();
}

bool DedupTable::erase(const Key& key, std::uint64_t seq) {
  if (index_.empty()) return false;
  std::string scratch;
  const Entry probe = shape(key, scratch);
  const Probe where = locate(probe, scratch, hash(probe, scratch));
  if (where.found == kNoSlot) return false;
  const std::size_t at = at_of(index_[where.found]);
  if (ring_[at].seq() != seq || (ring_[at].flags & kOnItsWay)) return false;
  kill(at);
  return true;
}

std::size_t DedupTable::memory_bytes() const noexcept {
  return ring_.capacity() * sizeof(Entry) + index_.capacity() * sizeof(std::uint32_t) + arena_.capacity();
}

std::size_t DedupTable::slot_of(std::size_t at) const {
  const std::size_t mask = index_.size() - 1;
  std::size_t slot = hash(ring_[at], arena_) & mask;
  while (at_of(index_[slot]) != at || index_[slot] == 0) slot = (slot + 1) & mask;
  return slot;
}

void DedupTable::index(std::size_t at) {
  // At most half full: a lookup of a key that is not there (every new publish) probes
  // 2.5 slots on average (linear probing), each a look at a ring entry.
  if ((live_ + 1) * 2 > index_.size()) {
    std::size_t size = index_.empty() ? 16 : index_.size() * 2;
    while ((live_ + 1) * 2 > size) size *= 2;  // about a quarter full after growing
    index_.assign(size, 0);
    reindex(at);
  }
  place(at);
}

void DedupTable::place(std::size_t at) {
  const std::size_t mask = index_.size() - 1;
  const std::uint64_t h = hash(ring_[at], arena_);
  std::size_t slot = h & mask;
  while (index_[slot] != 0) slot = (slot + 1) & mask;
  index_[slot] = slot_value(at, h);
}

void DedupTable::reindex(std::size_t skip) {
  for (std::size_t i = 0; i < count_; ++i) {
    const std::size_t pos = (head_ + i) & (ring_.size() - 1);
    if (pos != skip && ring_[pos].kind != kDead) place(pos);
  }
}

void DedupTable::unindex(std::size_t slot) {
  // Backward shift: every entry after the hole that may sit in it moves up, so that no
  // probe meets a hole before its entry (no tombstones).
  const std::size_t mask = index_.size() - 1;
  index_[slot] = 0;
  for (std::size_t next = (slot + 1) & mask; index_[next] != 0; next = (next + 1) & mask) {
    const std::size_t home = hash(ring_[at_of(index_[next])], arena_) & mask;
    // It may move to `slot` if its home is not in (slot, next].
    const bool stays = slot <= next ? (home > slot && home <= next) : (home > slot || home <= next);
    if (stays) continue;
    index_[slot] = index_[next];
    index_[next] = 0;
    slot = next;
  }
}

void DedupTable::kill(std::size_t at) {
  unindex(slot_of(at));
  if (ring_[at].kind == kArena) arena_live_ -= ring_[at].id.arena.size;
  ring_[at].kind = kDead;
  --live_;
}

void DedupTable::grow() {
  std::vector<Entry> bigger(ring_.empty() ? 16 : ring_.size() * 2);
  for (std::size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
  ring_ = std::move(bigger);
  head_ = 0;
  // A slot holds a ring position + 1 in its low bits and, above them, as many bits of
  // the entry's hash as are left: most probes end on those without a look at the ring.
  pos_bits_ = static_cast<unsigned>(std::bit_width(ring_.size()));
  tag_bits_ = pos_bits_ <= 28 ? 32 - pos_bits_ : 0;
  if (index_.empty()) return;
  std::fill(index_.begin(), index_.end(), 0);
  reindex(ring_.size());  // every entry (no ring position is that)
}

void DedupTable::rebase(std::uint64_t ts_ms) {
  // Times are kept as 32-bit offsets; what is older than 2^32 ms (49 days, past any
  // window: dedup_window_ms is at most 7 days) is forgotten, the rest counted anew.
  const std::uint64_t base = ts_ms - 0x8000'0000ULL;
  expire(base, ~std::size_t{0});
  for (std::size_t i = 0; i < count_; ++i) {
    Entry& e = ring_[(head_ + i) & (ring_.size() - 1)];
    e.ts = base_ms_ + e.ts > base ? static_cast<std::uint32_t>(base_ms_ + e.ts - base) : 0;
  }
  base_ms_ = base;
}

void DedupTable::compact_arena() {
  std::string kept;
  kept.reserve(arena_live_);
  for (std::size_t i = 0; i < count_; ++i) {
    Entry& e = ring_[(head_ + i) & (ring_.size() - 1)];
    if (e.kind != kArena) continue;
    const auto offset = static_cast<std::uint32_t>(kept.size());
    kept.append(arena_, e.id.arena.offset, e.id.arena.size);
    e.id.arena.offset = offset;
  }
  arena_ = std::move(kept);
  arena_live_ = arena_.size();
}

}  // namespace switchboard::actors
