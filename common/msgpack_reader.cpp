#include "switchboard/common/msgpack_reader.hpp"

#include <vector>

namespace switchboard {
namespace detail {

// Fills the nodes as msgpack-c's parser visits the values. Each limit is checked where
// msgpack::v2::detail::create_object_visitor (what msgpack::unpack uses) checks it, in
// the same order, and stops the parse instead of throwing.
struct MsgpackVisitor {
  std::vector<MsgpackNode> nodes;
  std::vector<std::uint32_t> open;  // the containers begun and not yet ended
  msgpack::unpack_limit limit;
  MsgpackFailure failure = MsgpackFailure::none;

  void init() {
    nodes.clear();
    open.clear();
    failure = MsgpackFailure::none;
  }
  bool fail(MsgpackFailure why) {
    failure = why;
    return false;
  }
  MsgpackNode& add(MsgpackType type, std::uint32_t size = 0) {
    MsgpackNode& n = nodes.emplace_back();
    n.type = type;
    n.size = size;
    n.extent = 1;
    n.via.u64 = 0;
    return n;
  }
  bool add_bytes(MsgpackType type, const char* v, std::uint32_t size, std::size_t max) {
    if (size > max) return fail(MsgpackFailure::bytes_too_long);
    add(type, size).via.bytes = v;
    return true;
  }
  bool begin(MsgpackType type, std::uint32_t size, std::size_t max, MsgpackFailure too_many) {
    if (size > max) return fail(too_many);
    // msgpack-c counts the root in its stack: a value may hold `depth` containers, nested.
    if (open.size() >= limit.depth()) return fail(MsgpackFailure::too_deep);
    open.push_back(static_cast<std::uint32_t>(nodes.size()));
    add(type, size);
    return true;
  }
  bool end() {
    const std::uint32_t at = open.back();
    open.pop_back();
    nodes[at].extent = static_cast<std::uint32_t>(nodes.size() - at);
    return true;
  }

  bool visit_nil() { add(MsgpackType::nil); return true; }
  bool visit_boolean(bool v) { add(MsgpackType::boolean).via.boolean = v; return true; }
  bool visit_positive_integer(std::uint64_t v) { add(MsgpackType::positive_integer).via.u64 = v; return true; }
  bool visit_negative_integer(std::int64_t v) {
    // As msgpack-c: an int family encoding of a value >= 0 is a positive integer.
    if (v >= 0) add(MsgpackType::positive_integer).via.u64 = static_cast<std::uint64_t>(v);
    else add(MsgpackType::negative_integer).via.i64 = v;
    return true;
  }
  bool visit_float32(float v) { add(MsgpackType::float32).via.f64 = v; return true; }
  bool visit_float64(double v) { add(MsgpackType::float64).via.f64 = v; return true; }
  bool visit_str(const char* v, std::uint32_t size) { return add_bytes(MsgpackType::str, v, size, limit.str()); }
  bool visit_bin(const char* v, std::uint32_t size) { return add_bytes(MsgpackType::bin, v, size, limit.bin()); }
  bool visit_ext(const char* v, std::uint32_t size) { return add_bytes(MsgpackType::ext, v, size, limit.ext()); }
  bool start_array(std::uint32_t n) {
    return begin(MsgpackType::array, n, limit.array(), MsgpackFailure::array_too_large);
  }
  bool start_array_item() { return true; }
  bool end_array_item() { return true; }
  bool end_array() { return end(); }
  bool start_map(std::uint32_t n) { return begin(MsgpackType::map, n, limit.map(), MsgpackFailure::map_too_large); }
  bool start_map_key() { return true; }
  bool end_map_key() { return true; }
  bool start_map_value() { return true; }
  bool end_map_value() { return true; }
  bool end_map() { return end(); }
  void parse_error(std::size_t, std::size_t) {}
  void insufficient_bytes(std::size_t, std::size_t) {}
  bool referenced() const { return true; }
  void set_referenced(bool) {}
};

// A reader's storage: the nodes, the visitor's stack and msgpack-c's parser with its
// own stack, all kept between reads. msgpack::parse would build a new parser per call,
// and the parser reserves its stack on the heap when built; keeping one (the same
// parse_helper msgpack::parse uses, re-initialised per read) is what makes a warm read
// allocate nothing.
struct MsgpackStore {
  MsgpackVisitor visitor;
  msgpack::v3::detail::parse_helper<MsgpackVisitor> parser{visitor};
  std::size_t consumed = 0;
};

}  // namespace detail

namespace {

// A store that grew past this many nodes (1.5 MiB) for one big value is not kept.
constexpr std::size_t kKeptNodes = std::size_t{1} << 16;
// Readers alive at once on one thread: a frame, and a value read while it is held.
constexpr std::size_t kPooledStores = 8;

thread_local bool pool_gone = false;
struct StorePool {
  std::vector<detail::MsgpackStore*> free;
  ~StorePool() {
    for (auto* store : free) delete store;
    pool_gone = true;
  }
};
thread_local StorePool pool;

}  // namespace

void detail::MsgpackStoreRelease::operator()(MsgpackStore* store) const noexcept {
  if (pool_gone || pool.free.size() >= kPooledStores || store->visitor.nodes.capacity() > kKeptNodes) {
    delete store;
    return;
  }
  pool.free.push_back(store);
}

MsgpackReader::MsgpackReader() {
  if (!pool_gone && !pool.free.empty()) {
    store_.reset(pool.free.back());
    pool.free.pop_back();
  } else {
    store_.reset(new detail::MsgpackStore);
  }
}

bool MsgpackReader::read(std::string_view bytes, const msgpack::unpack_limit& limit) {
  auto& s = *store_;
  s.visitor.limit = limit;
  s.parser.init();
  s.consumed = 0;
  // What msgpack::v3::detail::parse_imp does around the parser.
  if (bytes.empty()) return s.visitor.fail(MsgpackFailure::truncated);
  std::size_t offset = 0;
  msgpack::parse_return ret;
  try {
    ret = s.parser.execute(bytes.data(), bytes.size(), offset);
  } catch (const msgpack::size_overflow&) {  // the parser's own check of ext 32 sizes (32-bit size_t)
    return s.visitor.fail(MsgpackFailure::bytes_too_long);
  }
  switch (ret) {
    case msgpack::PARSE_SUCCESS:
      s.consumed = offset;
      return true;
    case msgpack::PARSE_CONTINUE: return s.visitor.fail(MsgpackFailure::truncated);
    case msgpack::PARSE_STOP_VISITOR: return false;  // a limit: the visitor said which
    default: return s.visitor.fail(MsgpackFailure::malformed);
  }
}

const MsgpackNode& MsgpackReader::root() const noexcept { return store_->visitor.nodes.front(); }
std::size_t MsgpackReader::consumed() const noexcept { return store_->consumed; }
MsgpackFailure MsgpackReader::failure() const noexcept { return store_->visitor.failure; }
std::size_t MsgpackReader::node_capacity() const noexcept { return store_->visitor.nodes.capacity(); }

const char* msgpack_type_name(MsgpackType type) noexcept {
  switch (type) {
    case MsgpackType::nil: return "nil";
    case MsgpackType::boolean: return "a boolean";
    case MsgpackType::positive_integer: return "an unsigned integer";
    case MsgpackType::negative_integer: return "a negative integer";
    case MsgpackType::float32:
    case MsgpackType::float64: return "a float";
    case MsgpackType::str: return "a string";
    case MsgpackType::bin: return "binary";
    case MsgpackType::ext: return "an extension";
    case MsgpackType::array: return "an array";
    case MsgpackType::map: return "a map";
  }
  return "unknown";
}

}  // namespace switchboard
