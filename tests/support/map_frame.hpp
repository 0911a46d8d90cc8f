// Builds msgpack map frames field by field, including ones no encoder would write
// (duplicate keys, raw bytes as a value): for tests that send bad frames.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "switchboard/transport/codec.hpp"

namespace switchboard::testing {

class MapFrame {
 public:
  template <class T>
  MapFrame& add(std::string_view key, const T& value) {
    ++count_;
    transport::Packer pk(body_buffer_);
    pk.pack(key);
    pk.pack(value);
    return *this;
  }
  MapFrame& add_raw(std::string_view key, std::string_view raw_msgpack) {
    ++count_;
    transport::Packer(body_buffer_).pack(key);
    body_buffer_.write(raw_msgpack.data(), raw_msgpack.size());
    return *this;
  }
  std::string str() const {
    transport::FrameBuffer head;
    transport::Packer pk(head);
    pk.pack_map(count_);
    return transport::to_string(head) + transport::to_string(body_buffer_);
  }

 private:
  transport::FrameBuffer body_buffer_;
  std::uint32_t count_ = 0;
};

/// A client request frame with its version, op and id, to add fields to.
inline MapFrame request_frame(std::string_view op, std::uint64_t id) {
  MapFrame f;
  f.add("v", 1).add("op", op).add("id", id);
  return f;
}

}  // namespace switchboard::testing
