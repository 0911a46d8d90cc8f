// Reading msgpack without msgpack-c's object tree.
//
// msgpack::unpack builds a tree of msgpack::object in a msgpack::zone: heap chunks for
// every frame, and an array or map header reserves room for all the elements it
// announces before they arrive. MsgpackReader runs msgpack-c's own parser with a
// visitor that lays the values out as a flat array of MsgpackNode, in storage taken from
// a pool of the thread and given back when the reader goes, so frames read one after
// another reuse it: once warm, reading a frame allocates nothing. Strings, binaries and
// extensions point into the bytes read; nothing is copied.
//
// The limits are msgpack-c's (msgpack::unpack_limit), checked where msgpack-c's own
// object builder checks them, so a value is refused for the same reason, at the same
// point, as msgpack::unpack would refuse it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <msgpack.hpp>

namespace switchboard {

enum class MsgpackType : std::uint8_t {
  nil,
  boolean,
  positive_integer,  ///< 0 and up (u64)
  negative_integer,  ///< below 0 (i64)
  float32,           ///< f64 holds it
  float64,
  str,
  bin,
  ext,  ///< bytes: the type byte, then the data; size counts both
  array,
  map,
};

class MsgpackElements;

/// One value of a msgpack document. A container's elements follow it in the array, a
/// map's as key, value, key, value; each takes `extent` nodes, itself and everything in it.
struct MsgpackNode {
  MsgpackType type;
  /// str, bin, ext: bytes; array: elements; map: key/value pairs.
  std::uint32_t size;
  /// Nodes from this one to the end of its last element: 1 for a scalar.
  std::uint32_t extent;
  union {
    std::uint64_t u64;
    std::int64_t i64;
    double f64;
    bool boolean;
    const char* bytes;  // str, bin, ext: into the bytes read
  } via;

  bool is(MsgpackType t) const noexcept { return type == t; }
  /// The bytes of a str, bin or ext.
  std::string_view view() const noexcept { return {via.bytes, size}; }
  /// The value after this one (its next sibling, or the end of its container).
  const MsgpackNode* next() const noexcept { return this + extent; }
  /// An array's elements.
  MsgpackElements elements() const noexcept;
};

/// The elements of an array, in order.
class MsgpackElements {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = MsgpackNode;
    using difference_type = std::ptrdiff_t;
    using pointer = const MsgpackNode*;
    using reference = const MsgpackNode&;
    iterator() = default;
    iterator(const MsgpackNode* at, std::uint32_t left) : at_(at), left_(left) {}
    reference operator*() const noexcept { return *at_; }
    pointer operator->() const noexcept { return at_; }
    iterator& operator++() noexcept { at_ = at_->next(); --left_; return *this; }
    iterator operator++(int) noexcept { iterator old = *this; ++*this; return old; }
    bool operator==(const iterator& o) const noexcept { return left_ == o.left_; }
    bool operator!=(const iterator& o) const noexcept { return left_ != o.left_; }
   private:
    const MsgpackNode* at_ = nullptr;
    std::uint32_t left_ = 0;
  };

  MsgpackElements() = default;
  MsgpackElements(const MsgpackNode* first, std::uint32_t count) : first_(first), count_(count) {}
  iterator begin() const noexcept { return {first_, count_}; }
  iterator end() const noexcept { return {nullptr, 0}; }
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }

 private:
  const MsgpackNode* first_ = nullptr;
  std::uint32_t count_ = 0;
};

inline MsgpackElements MsgpackNode::elements() const noexcept {
  return type == MsgpackType::array ? MsgpackElements(this + 1, size) : MsgpackElements();
}

/// Why a read failed; each is the msgpack-c exception msgpack::unpack throws for it.
enum class MsgpackFailure : std::uint8_t {
  none,
  too_deep,         ///< depth_size_overflow
  array_too_large,  ///< array_size_overflow
  map_too_large,    ///< map_size_overflow
  bytes_too_long,   ///< str_, bin_ or ext_size_overflow (msgpack::size_overflow)
  truncated,        ///< insufficient_bytes
  malformed,        ///< parse_error (a byte that starts no msgpack value)
};

namespace detail {
struct MsgpackStore;
struct MsgpackStoreRelease {
  void operator()(MsgpackStore* store) const noexcept;
};
}  // namespace detail

/// Reads msgpack values into nodes. Move-only; holds its storage (from the thread's
/// pool, given back when it goes) and the nodes of the last value read, which stay
/// valid until the next read, the reader's end, or the end of the bytes they came from.
class MsgpackReader {
 public:
  MsgpackReader();
  MsgpackReader(MsgpackReader&&) noexcept = default;
  MsgpackReader& operator=(MsgpackReader&&) noexcept = default;

  /// Reads one msgpack value from the front of `bytes`. True: root() is the value and
  /// consumed() how many bytes it took (bytes may follow it). False: failure() says why.
  bool read(std::string_view bytes, const msgpack::unpack_limit& limit);

  /// The value read; only after a read that returned true.
  const MsgpackNode& root() const noexcept;
  std::size_t consumed() const noexcept;
  MsgpackFailure failure() const noexcept;
  /// How many nodes the storage holds without growing (to see that it is reused).
  std::size_t node_capacity() const noexcept;

 private:
  std::unique_ptr<detail::MsgpackStore, detail::MsgpackStoreRelease> store_;
};

/// The value converted as msgpack-c's `msgpack::object::as<T>()` converts it, for T bool,
/// an unsigned integer type, std::string (from a str or a bin) or a vector of strings
/// (from an array of them); throws msgpack::type_error where `as` would.
template <class T>
T msgpack_as(const MsgpackNode& node) {
  if constexpr (std::is_same_v<T, bool>) {
    if (node.type != MsgpackType::boolean) throw msgpack::type_error();
    return node.via.boolean;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (node.type != MsgpackType::str && node.type != MsgpackType::bin) throw msgpack::type_error();
    return std::string(node.view());
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (node.type != MsgpackType::array) throw msgpack::type_error();
    std::vector<std::string> out;
    out.reserve(node.size);
    for (const MsgpackNode& element : node.elements()) out.push_back(msgpack_as<std::string>(element));
    return out;
  } else {
    static_assert(std::is_unsigned_v<T>, "msgpack_as: bool, an unsigned integer or std::string");
    if (node.type != MsgpackType::positive_integer || node.via.u64 > std::numeric_limits<T>::max())
      throw msgpack::type_error();
    return static_cast<T>(node.via.u64);
  }
}

/// "a string", "an array", ...: for error messages.
const char* msgpack_type_name(MsgpackType type) noexcept;

}  // namespace switchboard
