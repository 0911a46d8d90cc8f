// Bad frames sent over a real socket to a running node: each gets an error reply with
// its stable code, and the node keeps serving everyone.
#include <gtest/gtest.h>

#include <zmq.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::transport;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::options_for;

namespace {

struct Case {
  std::string name;
  std::vector<std::string> frames;
  errc expected;
  std::uint64_t expected_id = 0;  ///< the id echoed, where the frame had a readable one
};

/// Builds a msgpack map frame from (key, packer-of-value) pairs.
class MapFrame {
 public:
  template <class T>
  MapFrame& add(std::string_view key, const T& value) {
    ++count_;
    Packer pk(body_buffer_);
    pk.pack(key);
    pk.pack(value);
    return *this;
  }
  MapFrame& add_raw(std::string_view key, std::string_view raw_msgpack) {
    ++count_;
    Packer(body_buffer_).pack(key);
    body_buffer_.write(raw_msgpack.data(), raw_msgpack.size());
    return *this;
  }
  std::string str() const {
    msgpack::sbuffer head;
    Packer pk(head);
    pk.pack_map(count_);
    return to_string(head) + to_string(body_buffer_);
  }

 private:
  msgpack::sbuffer body_buffer_;
  std::uint32_t count_ = 0;
};

MapFrame request(std::string_view op, std::uint64_t id) {
  MapFrame f;
  f.add("v", 1).add("op", op).add("id", id);
  return f;
}

std::string invalid_utf8_str() {  // a msgpack str holding 0xFF 0xFE
  return std::string("\xa2\xff\xfe", 3);
}

}  // namespace

TEST(BadInput, EveryBadFrameGetsItsErrorAndTheNodeKeepsServing) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  {
    client::Client setup(options_for(node));
    ASSERT_TRUE(setup.create_room("general", "ann"));
  }
  const std::string deep = std::string(40, '\x91') + "\x01";
  std::vector<Case> cases = {
      {"not msgpack", {"\xc1"}, errc::bad_frame},
      {"empty frame", {""}, errc::bad_frame},
      {"truncated map", {"\x83\xa1v\x01"}, errc::bad_frame},
      {"an array, not a map", {"\x93\x01\x02\x03"}, errc::bad_frame},
      {"trailing bytes", {request("ping", 5).str() + std::string(1, '\0')}, errc::bad_frame},
      {"two frames", {request("ping", 6).str(), "extra"}, errc::bad_frame},
      {"integer key", {"\x81\x01\x01"}, errc::bad_frame},
      {"duplicate key", {request("ping", 7).add("id", 8).str()}, errc::bad_frame},
      {"array header claiming 4 billion elements", {std::string("\xdd\xff\xff\xff\xff", 5)}, errc::too_large},
      {"map header claiming 4 billion entries", {std::string("\xdf\xff\xff\xff\xff", 5)}, errc::too_large},
      {"nesting 40 deep", {request("ping", 9).add_raw("x", deep).str()}, errc::too_large},
      {"frame over the frame limit", {request("ping", 10).add("pad", std::string(300 * 1024, 'p')).str()},
       errc::too_large},
      {"body over the body limit",
       {request("publish", 11).add("room", "general").add("user", "ann").add("cmid", "c")
            .add("body", std::string(65 * 1024, 'b')).str()},
       errc::too_large, 11},
      {"missing version", {MapFrame().add("op", "ping").add("id", 12).str()}, errc::bad_field, 12},
      {"version 2", {MapFrame().add("v", 2).add("op", "ping").add("id", 13).str()}, errc::unsupported_version, 13},
      {"unknown op", {request("dance", 14).str()}, errc::unknown_op, 14},
      {"id is a string", {MapFrame().add("v", 1).add("op", "ping").add("id", "x").str()}, errc::bad_field},
      {"missing id", {MapFrame().add("v", 1).add("op", "ping").str()}, errc::bad_field},
      {"room is a number",
       {request("publish", 15).add("room", 7).add("user", "ann").add("cmid", "c").add("body", "b").str()},
       errc::bad_field, 15},
      {"missing room", {request("publish", 16).add("user", "ann").add("cmid", "c").add("body", "b").str()},
       errc::bad_field, 16},
      {"body not UTF-8",
       {request("publish", 17).add("room", "general").add("user", "ann").add("cmid", "c")
            .add_raw("body", invalid_utf8_str()).str()},
       errc::bad_utf8, 17},
      {"empty client message id",
       {request("publish", 18).add("room", "general").add("user", "ann").add("cmid", "").add("body", "b").str()},
       errc::bad_field, 18},
      {"room name with a newline", {request("join", 19).add("room", "gen\neral").add("user", "ann").str()},
       errc::bad_field, 19},
      {"history with before and after",
       {request("history", 20).add("room", "general").add("before", 5).add("after", 1).str()}, errc::bad_field,
       20},
      {"limit is negative", {request("history", 21).add("room", "general").add("limit", -5).str()},
       errc::bad_field, 21},
      {"publish to a missing room",
       {request("publish", 22).add("room", "nowhere").add("user", "ann").add("cmid", "c").add("body", "b").str()},
       errc::no_such_room, 22},
      {"publish by a non-member",
       {request("publish", 23).add("room", "general").add("user", "eve").add("cmid", "c").add("body", "b").str()},
       errc::not_member, 23},
      {"history of a missing room", {request("history", 24).add("room", "nowhere").str()}, errc::no_such_room, 24},
  };
  ASSERT_GE(cases.size(), 15u);

  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  client::connect_socket(dealer, options_for(node), node.client_endpoint());
  auto call = [&](const std::vector<std::string>& frames) -> std::optional<Reply> {
    for (std::size_t i = 0; i < frames.size(); ++i)
      dealer.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(10'000)) == 0) return std::nullopt;
    zmq::message_t reply;
    (void)dealer.recv(reply);
    auto decoded = decode_reply(std::string_view(static_cast<const char*>(reply.data()), reply.size()), Limits{});
    if (!decoded) return std::nullopt;
    return *decoded;
  };

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto reply = call(c.frames);
    ASSERT_TRUE(reply) << "no readable reply";
    ASSERT_TRUE(std::holds_alternative<ErrorReply>(reply->body)) << "accepted: " << op_name(reply->body);
    const auto& error = std::get<ErrorReply>(reply->body);
    EXPECT_EQ(error.code, c.expected) << errc_name(error.code) << ": " << error.message;
    EXPECT_FALSE(error.message.empty());
    EXPECT_EQ(reply->id, c.expected_id);
  }
  // Still serving, on the same connection.
  auto pong = call({encode_request({99, Ping{}})});
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->id, 99u);
  EXPECT_TRUE(std::holds_alternative<PingOk>(pong->body));
  EXPECT_EQ(node.stop(), 0) << "the node must still be alive and stop cleanly";
}

TEST(BadInput, MessageOverTheSocketLimitDropsOnlyThatConnection) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  client::connect_socket(rogue, options_for(node), node.client_endpoint());  // admitted, then misbehaving
  std::string huge(2 * 1024 * 1024, 'z');  // beyond ZMQ_MAXMSGSIZE (1 MiB)
  rogue.send(zmq::buffer(huge), zmq::send_flags::none);

  client::Client honest(options_for(node));
  ASSERT_TRUE(honest.create_room("after", "ann"));
  auto ack = honest.publish("after", "ann", "still here");
  ASSERT_TRUE(ack) << ack.error().message;
  EXPECT_EQ(ack->seq, 1u);
  zmq::pollitem_t item{rogue.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(200)), 0) << "an oversized message got a reply";
  EXPECT_EQ(node.stop(), 0);
}
