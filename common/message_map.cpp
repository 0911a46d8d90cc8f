#include "switchboard/common/message_map.hpp"

#include <msgpack.hpp>

namespace switchboard {
namespace {

struct Bytes {
  std::string out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

}  // namespace

std::string encode_message_map(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                               std::string_view body, std::string_view client_msg_id) {
  Bytes bytes;
  bytes.out.reserve(body.size() + room.size() + user.size() + client_msg_id.size() + 48);
  msgpack::packer<Bytes> pk(bytes);
  pk.pack_map(6);
  pk.pack(std::string_view("room"));
  pk.pack(room);
  pk.pack(std::string_view("seq"));
  pk.pack(seq);
  pk.pack(std::string_view("user"));
  pk.pack(user);
  pk.pack(std::string_view("ts"));
  pk.pack(ts_ms);
  pk.pack(std::string_view("body"));
  pk.pack(body);
  pk.pack(std::string_view("cmid"));
  pk.pack(client_msg_id);
  return std::move(bytes.out);
}

std::optional<MessageMapView> read_message_map(std::string_view bytes) {
  try {
    const msgpack::unpack_limit limit(/*array=*/0, /*map=*/6, /*str=*/bytes.size(), /*bin=*/0, /*ext=*/0, /*depth=*/1);
    std::size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(
        bytes.data(), bytes.size(), offset, [](msgpack::type::object_type, std::size_t, void*) { return true; },
        nullptr, limit);
    const msgpack::object& o = handle.get();
    if (offset != bytes.size() || o.type != msgpack::type::MAP || o.via.map.size != 6) return std::nullopt;
    MessageMapView m;
    int seen = 0;
    for (std::uint32_t i = 0; i < 6; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) return std::nullopt;
      const std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
      auto text = [&](std::string_view& into, int bit) {
        if (kv.val.type != msgpack::type::STR) return false;
        into = std::string_view(kv.val.via.str.ptr, kv.val.via.str.size);
        seen |= bit;
        return true;
      };
      auto number = [&](std::uint64_t& into, int bit) {
        if (kv.val.type != msgpack::type::POSITIVE_INTEGER) return false;
        into = kv.val.via.u64;
        seen |= bit;
        return true;
      };
      const bool ok = key == "room"   ? text(m.room, 1)
                      : key == "seq"  ? number(m.seq, 2)
                      : key == "user" ? text(m.user, 4)
                      : key == "ts"   ? number(m.ts_ms, 8)
                      : key == "body" ? text(m.body, 16)
                      : key == "cmid" ? text(m.client_msg_id, 32)
                                      : false;
      if (!ok) return std::nullopt;
    }
    if (seen != 63) return std::nullopt;
    return m;
  } catch (const std::exception&) {  // malformed msgpack, past the limits
    return std::nullopt;
  }
}

}  // namespace switchboard
