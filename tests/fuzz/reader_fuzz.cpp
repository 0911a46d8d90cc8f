// libFuzzer target, differential: transport::unpack_value / unpack_map (msgpack-c's
// parser filling MsgpackReader nodes) against msgpack::unpack, the object tree in a
// zone that they replaced, under three sets of limits. For every input both must
// agree: the same refusal (code and message), or the same values (types, sizes,
// scalars, string bytes, element order), and msgpack_as must convert or refuse each
// scalar as msgpack::object::as does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::transport;

namespace {

// transport::unpack_value and unpack_map as they were before MsgpackReader.
Result<msgpack::object_handle> reference_value(std::string_view frame, const Limits& limits) {
  if (frame.size() > limits.max_frame)
    return make_error(errc::too_large, "frame of " + std::to_string(frame.size()) + " bytes exceeds the limit of " +
                                           std::to_string(limits.max_frame));
  if (frame.empty()) return make_error(errc::bad_frame, "empty frame");
  const std::size_t honest = std::max<std::size_t>(frame.size(), 64);
  const std::size_t max_array = std::min(limits.max_array, honest);
  const std::size_t max_map = std::min(limits.max_map, honest);
  const msgpack::unpack_limit limit(max_array, max_map, limits.max_string, limits.max_string, limits.max_string,
                                    limits.max_depth);
  auto too_many = [&](const char* what, std::size_t cap, std::size_t configured) {
    if (cap < configured)
      return make_error(errc::too_large, std::string("an ") + what + " header announces more elements than the " +
                                             std::to_string(frame.size()) + "-byte frame can hold");
    return make_error(errc::too_large, std::string(what) + " larger than " + std::to_string(configured));
  };
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(
        frame.data(), frame.size(), offset, [](msgpack::type::object_type, std::size_t, void*) { return true; },
        nullptr, limit);
  } catch (const msgpack::depth_size_overflow&) {
    return make_error(errc::too_large, "nesting deeper than " + std::to_string(limits.max_depth));
  } catch (const msgpack::array_size_overflow&) {
    return too_many("array", max_array, limits.max_array);
  } catch (const msgpack::map_size_overflow&) {
    return too_many("map", max_map, limits.max_map);
  } catch (const msgpack::size_overflow&) {
    return make_error(errc::too_large, "string or binary longer than " + std::to_string(limits.max_string));
  } catch (const msgpack::insufficient_bytes&) {
    return make_error(errc::bad_frame, "truncated msgpack");
  } catch (const std::exception& e) {
    return make_error(errc::bad_frame, std::string("malformed msgpack: ") + e.what());
  }
  if (offset != frame.size())
    return make_error(errc::bad_frame,
                      std::to_string(frame.size() - offset) + " trailing bytes after the msgpack value");
  return handle;
}

std::string_view view(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::STR: return {o.via.str.ptr, o.via.str.size};
    case msgpack::type::BIN: return {o.via.bin.ptr, o.via.bin.size};
    default: return {};
  }
}

std::string reference_type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER: return "an unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER: return "a negative integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension";
  }
  return "unknown";
}

Result<msgpack::object_handle> reference_map(std::string_view frame, const Limits& limits) {
  auto handle = reference_value(frame, limits);
  if (!handle) return handle;
  if (handle->get().type != msgpack::type::MAP)
    return make_error(errc::bad_frame, "frame must be a msgpack map, got " + reference_type_name(handle->get()));
  const auto& map = handle->get().via.map;
  for (std::uint32_t i = 0; i < map.size; ++i) {
    if (map.ptr[i].key.type != msgpack::type::STR)
      return make_error(errc::bad_frame, "map keys must be strings, got " + reference_type_name(map.ptr[i].key));
    for (std::uint32_t j = 0; j < i; ++j)
      if (view(map.ptr[j].key) == view(map.ptr[i].key))
        return make_error(errc::bad_frame, "duplicate key '" + std::string(view(map.ptr[i].key)) + "'");
  }
  return handle;
}

[[noreturn]] void differ(const char* what) {
  std::fprintf(stderr, "reader_fuzz: MsgpackReader and msgpack::unpack differ: %s\n", what);
  std::abort();
}

// Whether `as` converts (and to what) agrees for one scalar.
template <class T>
void same_conversion(const msgpack::object& o, const MsgpackNode& n) {
  bool ref_ok = true, new_ok = true;
  T ref{}, got{};
  try { ref = o.as<T>(); } catch (const msgpack::type_error&) { ref_ok = false; }
  try { got = msgpack_as<T>(n); } catch (const msgpack::type_error&) { new_ok = false; }
  if (ref_ok != new_ok || (ref_ok && !(ref == got))) differ("msgpack_as");
}

// Compares the value at `n` with `o`; returns the node after it.
const MsgpackNode* same_tree(const msgpack::object& o, const MsgpackNode* n) {
  const std::string ref_name = reference_type_name(o);
  if (ref_name != type_name(*n)) differ("type");
  switch (o.type) {
    case msgpack::type::NIL: break;
    case msgpack::type::BOOLEAN:
      if (o.via.boolean != n->via.boolean) differ("boolean");
      break;
    case msgpack::type::POSITIVE_INTEGER:
      if (n->type != MsgpackType::positive_integer || o.via.u64 != n->via.u64) differ("unsigned integer");
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      if (n->type != MsgpackType::negative_integer || o.via.i64 != n->via.i64) differ("negative integer");
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
      const double a = o.via.f64, b = n->via.f64;
      if (!(a == b || (a != a && b != b))) differ("float");
      if ((o.type == msgpack::type::FLOAT32) != (n->type == MsgpackType::float32)) differ("float width");
      break;
    }
    case msgpack::type::STR:
    case msgpack::type::BIN:
      if (view(o) != n->view() || view(o).data() != n->view().data()) differ("bytes");
      break;
    case msgpack::type::EXT:
      // msgpack-c keeps the type byte in front of the data and counts the data only.
      if (o.via.ext.ptr != n->via.bytes || o.via.ext.size + 1 != n->size) differ("extension");
      break;
    case msgpack::type::ARRAY: {
      if (o.via.array.size != n->size) differ("array size");
      const MsgpackNode* e = n + 1;
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) e = same_tree(o.via.array.ptr[i], e);
      if (e != n->next()) differ("array extent");
      return e;
    }
    case msgpack::type::MAP: {
      if (o.via.map.size != n->size) differ("map size");
      const MsgpackNode* e = n + 1;
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        e = same_tree(o.via.map.ptr[i].key, e);
        e = same_tree(o.via.map.ptr[i].val, e);
      }
      if (e != n->next()) differ("map extent");
      return e;
    }
  }
  if (n->extent != 1) differ("scalar extent");
  same_conversion<bool>(o, *n);
  same_conversion<std::uint8_t>(o, *n);
  same_conversion<std::uint32_t>(o, *n);
  same_conversion<std::uint64_t>(o, *n);
  same_conversion<std::string>(o, *n);
  return n + 1;
}

template <class Read, class Reference>
void same(std::string_view frame, const Limits& limits, Read read, Reference reference) {
  auto got = read(frame, limits);
  auto ref = reference(frame, limits);
  if (got.ok() != ref.ok()) differ(got.ok() ? "accepted what msgpack::unpack refuses" : "refused what it reads");
  if (!ref.ok()) {
    if (got.error().code != ref.error().code) differ("error code");
    if (got.error().message != ref.error().message) differ("error message");
    return;
  }
  same_tree(ref->get(), &got->root());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  static const Limits client;  // the defaults: what a client frame is read with
  static const Limits tight = [] {
    Limits l;
    l.max_frame = 4096;
    l.max_string = 16;
    l.max_array = 4;
    l.max_map = 3;
    l.max_depth = 3;
    return l;
  }();
  static const Limits internal = [] {  // as actors/store_protocol.cpp reads its frames
    Limits l;
    l.max_frame = std::size_t{1} << 32;
    l.max_string = std::size_t{1} << 30;
    l.max_array = std::size_t{1} << 24;
    l.max_map = 64;
    l.max_depth = 8;
    return l;
  }();
  for (const Limits* limits : {&client, &tight, &internal}) {
    same(frame, *limits, unpack_value, reference_value);
    same(frame, *limits, unpack_map, reference_map);
  }
  return 0;
}
