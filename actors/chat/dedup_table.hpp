// The retry window of chat: the publishes it remembers once they are stored, so that a
// retry (same room, user and client message id) is answered with the seq its original
// was stored under, and stored once.
//
// A remembered publish takes a 36-byte slot in a ring kept in the order they were
// stored (the window is forgotten from its oldest end; the ring doubles when full), and
// a 4-byte slot in an open-addressing index of ring positions (kept 1/4 to 1/2 full):
// 46 bytes each at the default window of a million (bench: dedup_bytes_per_entry),
// where a std::unordered_map of string keys took about 280. A client message id of up to 32
// lowercase hex digits (what the client library makes) or of up to 16 other bytes is
// kept in the entry; a longer one in an arena beside it. A lookup compares the whole
// key (room, user and every byte of the id): a hash collision never makes a new
// message look like a retry. Rooms and users are given as numbers (chat numbers them).
// No sockets, no clock; one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::actors {

class DedupTable {
 public:
  struct Key {
    std::uint32_t room = 0;
    std::uint32_t user = 0;
    std::string_view client_msg_id;
  };
  struct Seen {
    std::uint64_t seq = 0;
    std::uint64_t ts_ms = 0;
    bool on_its_way = false;  ///< added by claim(), not stored yet (seq and ts 0)
  };
  /// A publish on its way to being stored: its entry's number, good until settle() or
  /// drop() (it is never forgotten from the oldest end before).
  using Claim = std::uint64_t;
  struct Claimed {
    Claim claim = 0;            ///< the new entry's, or the found one's when it is on its way
    std::optional<Seen> found;  ///< remembered already (stored, or on its way): nothing added
  };

  /// The seq and ts `key` was stored with, if it is remembered.
  std::optional<Seen> find(const Key& key) const;
  /// One lookup for a publish that comes in: `key` as remembered (stored or on its
  /// way), or, when it is not, `key` added as on its way (at `ts_ms`).
  Claimed claim(const Key& key, std::uint64_t ts_ms);
  /// A claimed publish is stored, under `seq` at `ts_ms`.
  void settle(Claim claim, std::uint64_t seq, std::uint64_t ts_ms);
  /// A claimed publish will not be stored: forgotten.
  void drop(Claim claim);
  /// Remembers `key` as stored under `seq` at `ts_ms`, as the newest entry (a key
  /// remembered already is remembered again, and found with the newer seq). `ts_ms`
  /// should not go back in time by more than the window.
  void insert(const Key& key, std::uint64_t seq, std::uint64_t ts_ms);
  /// insert() of a key known not to be remembered (found missing since, and nothing
  /// else inserted it): one probe less.
  void insert_new(const Key& key, std::uint64_t seq, std::uint64_t ts_ms);
  /// Forgets the oldest entries while they are older than `oldest_ms` or more than
  /// `max_entries` are remembered; never one on its way (it stops there until it is
  /// settled).
  void expire(std::uint64_t oldest_ms, std::size_t max_entries);
  /// Forgets `key` if it is remembered with `seq`; whether it was.
  bool erase(const Key& key, std::uint64_t seq);
  /// Forgets every entry of a room for which `forget(room)` is true.
  template <class Forget>
  void erase_rooms(Forget forget) {
    for (std::size_t i = 0; i < count_; ++i) {
      const std::size_t at = (head_ + i) & (ring_.size() - 1);
      if (ring_[at].kind != kDead && !(ring_[at].flags & kOnItsWay) && forget(ring_[at].room)) kill(at);
    }
  }

  /// Entries remembered (forgotten ones at the oldest end not counted).
  std::size_t size() const noexcept { return live_; }
  /// What the table holds in memory, in bytes: ring, index and arena.
  std::size_t memory_bytes() const noexcept;

 private:
  static constexpr std::uint8_t kDead = 0, kInline = 1, kHex = 2, kArena = 3;
  static constexpr std::uint8_t kOnItsWay = 1;  ///< Entry::flags
  /// 36 bytes: what one remembered publish costs in the ring.
  struct Entry {
    std::uint32_t room = 0, user = 0;
    std::uint32_t ts = 0;      ///< ms after base_ms_
    std::uint32_t seq_low = 0;  ///< the seq: 40 bits, low and high parts
    std::uint8_t seq_high = 0;
    std::uint8_t flags = 0;  ///< kOnItsWay
    std::uint8_t kind = kDead;
    std::uint8_t size = 0;  ///< the id's length as given (kHex: hex digits)
    std::uint64_t seq() const noexcept { return std::uint64_t{seq_high} << 32 | seq_low; }
    union {
      unsigned char bytes[16];  ///< kInline: as given; kHex: two digits a byte
      struct {
        std::uint32_t offset, size;
      } arena;  ///< kArena: where in arena_
    } id{};
  };
  static_assert(sizeof(Entry) == 36);

  /// The key as an entry holds it (its id stored as the entry would store it, but in
  /// `scratch` where an entry would use the arena).
  void add(const Key& key, std::uint64_t seq, std::uint64_t ts_ms, bool may_be_there);
  static constexpr std::size_t kNoSlot = ~std::size_t{0};
  /// Where a probe for an entry ended: the index slot holding it, or (not there) the
  /// free slot the probe stopped on.
  struct Probe {
    std::size_t found = kNoSlot, free = kNoSlot;
  };
  Probe locate(const Entry& e, const std::string& scratch, std::uint64_t h) const;
  /// Adds shaped entry `e` (its seq and flags set) as the newest, at `ts_ms`. `h` and
  /// `free_slot`: its hash and the free index slot a probe for it ended on (kNoSlot: not
  /// known; it is placed by a probe of its own).
  void append(Entry e, const std::string& scratch, std::uint64_t ts_ms, std::uint64_t h, std::size_t free_slot);
  std::size_t at_of(std::uint32_t slot) const noexcept {
    return static_cast<std::size_t>(slot & ((std::uint64_t{1} << pos_bits_) - 1)) - 1;
  }
  std::uint32_t tag(std::uint64_t hash) const noexcept {
    return tag_bits_ == 0 ? 0 : static_cast<std::uint32_t>(hash >> (64 - tag_bits_));
  }
  bool tag_matches(std::uint32_t slot, std::uint64_t hash) const noexcept {
    return tag_bits_ == 0 || (slot >> pos_bits_) == tag(hash);
  }
  std::uint32_t slot_value(std::size_t at, std::uint64_t hash) const noexcept {
    return (tag_bits_ == 0 ? 0 : tag(hash) << pos_bits_) | static_cast<std::uint32_t>(at + 1);
  }
  Entry shape(const Key& key, std::string& scratch) const;
  std::string_view id_of(const Entry& e, const std::string& scratch) const;
  bool same(const Entry& a, const std::string& a_scratch, const Entry& b) const;
  std::uint64_t hash(const Entry& e, const std::string& scratch) const;
  /// The index slot holding ring position `at` (which must be indexed).
  std::size_t slot_of(std::size_t at) const;
  void unindex(std::size_t slot);
  void index(std::size_t at);
  /// Puts ring position `at` in the index (which has room).
  void place(std::size_t at);
  /// Puts every live entry but ring position `skip` in the (emptied) index.
  void reindex(std::size_t skip);
  void kill(std::size_t at);
  void grow();
  void rebase(std::uint64_t ts_ms);
  void compact_arena();

  std::vector<Entry> ring_;           ///< a power of two; oldest at head_
  std::size_t head_ = 0, count_ = 0;  ///< count_ counts forgotten ones not yet at the oldest end
  std::uint64_t head_number_ = 0;     ///< the number of the entry at head_ (entries are numbered as added)
  std::size_t at_number(Claim claim) const noexcept { return (head_ + (claim - head_number_)) & (ring_.size() - 1); }
  std::size_t live_ = 0;
  /// Ring position + 1 (low pos_bits_ bits) and a tag of the entry's hash (the rest),
  /// or 0 for a free slot; a power of two.
  std::vector<std::uint32_t> index_;
  std::string arena_;                 ///< ids too long to keep in their entry
  std::size_t arena_live_ = 0;        ///< bytes of arena_ still referred to
  std::uint64_t base_ms_ = 0;
  unsigned pos_bits_ = 32, tag_bits_ = 0;  ///< of an index slot: see grow()
};

}  // namespace switchboard::actors
