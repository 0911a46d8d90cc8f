// The catalogue of bad inputs (docs/RELIABILITY.md): one table of what users and
// operators can get wrong, across every door of one real node: request frames over
// ZeroMQ (the codec), text and binary frames over the WebSocket bridge, `switchboard`
// command lines and topology files. Each row names its input and the error code (or
// the part of the message) it must get; after all of them the node still serves a
// ZeroMQ client and a WebSocket client and stops cleanly.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <zmq.hpp>

#include "map_frame.hpp"
#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::transport;
using switchboard::testing::MapFrame;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using json = nlohmann::json;

namespace {

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

constexpr auto kWait = std::chrono::seconds(10);

/// Where a row's input goes.
enum class Where {
  codec,        ///< frames of one ZeroMQ message to the node's client endpoint
  bridge_text,  ///< WebSocket text frames (JSON), on a fresh connection
  bridge_binary,///< WebSocket binary frames (msgpack), on a fresh connection
  cli,          ///< a `switchboard` command line; "{client}" stands for the node's endpoint,
                ///< "{key}" for a good token signing key
  topology,     ///< a topology file given to `switchboard check-config`
};

struct Row {
  Where where;
  std::string name;
  std::vector<std::string> input;
  std::string expected;        ///< the error code, or (cli, topology) a part of the message
  std::uint64_t expected_id = 0;  ///< codec: the id echoed, where the frame had a readable one
};

std::string where_name(Where w) {
  switch (w) {
    case Where::codec: return "codec";
    case Where::bridge_text: return "bridge/text";
    case Where::bridge_binary: return "bridge/binary";
    case Where::cli: return "cli";
    case Where::topology: return "topology";
  }
  return "?";
}

using switchboard::testing::request_frame;

std::string pack(const json& j) {
  const auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

const std::string kAuth = R"({"op":"auth","id":1,"user":"ann"})";
const char* const kNode = "[nodes.a]\nclient = \"tcp://127.0.0.1:7400\"\n";

std::vector<Row> catalogue() {
  const std::string deep = std::string(40, '\x91') + "\x01";
  const std::string bad_utf8("\xa2\xff\xfe", 3);  // a msgpack str holding 0xFF 0xFE
  const std::string node = kNode;
  return {
      // ---- the codec: request frames over ZeroMQ (docs/PROTOCOL.md sections 1-3)
      {Where::codec, "not msgpack", {"\xc1"}, "bad_frame"},
      {Where::codec, "empty frame", {""}, "bad_frame"},
      {Where::codec, "truncated map", {"\x83\xa1v\x01"}, "bad_frame"},
      {Where::codec, "an array, not a map", {"\x93\x01\x02\x03"}, "bad_frame"},
      {Where::codec, "trailing bytes", {request_frame("ping", 5).str() + std::string(1, '\0')}, "bad_frame"},
      {Where::codec, "two frames", {request_frame("ping", 6).str(), "extra"}, "bad_frame"},
      {Where::codec, "integer key", {"\x81\x01\x01"}, "bad_frame"},
      {Where::codec, "duplicate key", {request_frame("ping", 7).add("id", 8).str()}, "bad_frame"},
      {Where::codec, "array header claiming 4 billion elements", {std::string("\xdd\xff\xff\xff\xff", 5)}, "too_large"},
      {Where::codec, "map header claiming 4 billion entries", {std::string("\xdf\xff\xff\xff\xff", 5)}, "too_large"},
      {Where::codec, "nesting 40 deep", {request_frame("ping", 9).add_raw("x", deep).str()}, "too_large"},
      {Where::codec, "frame over the frame limit",
       {request_frame("ping", 10).add("pad", std::string(300 * 1024, 'p')).str()}, "too_large"},
      {Where::codec, "body over the body limit",
       {request_frame("publish", 11).add("room", "general").add("user", "ann").add("cmid", "c")
            .add("body", std::string(65 * 1024, 'b')).str()},
       "too_large", 11},
      {Where::codec, "missing version", {MapFrame().add("op", "ping").add("id", 12).str()}, "bad_field", 12},
      {Where::codec, "version 2", {MapFrame().add("v", 2).add("op", "ping").add("id", 13).str()},
       "unsupported_version", 13},
      {Where::codec, "unknown op", {request_frame("dance", 14).str()}, "unknown_op", 14},
      {Where::codec, "id is a string", {MapFrame().add("v", 1).add("op", "ping").add("id", "x").str()}, "bad_field"},
      {Where::codec, "missing id", {MapFrame().add("v", 1).add("op", "ping").str()}, "bad_field"},
      {Where::codec, "room is a number",
       {request_frame("publish", 15).add("room", 7).add("user", "ann").add("cmid", "c").add("body", "b").str()},
       "bad_field", 15},
      {Where::codec, "missing room",
       {request_frame("publish", 16).add("user", "ann").add("cmid", "c").add("body", "b").str()}, "bad_field", 16},
      {Where::codec, "body not UTF-8",
       {request_frame("publish", 17).add("room", "general").add("user", "ann").add("cmid", "c")
            .add_raw("body", bad_utf8).str()},
       "bad_utf8", 17},
      {Where::codec, "empty client message id",
       {request_frame("publish", 18).add("room", "general").add("user", "ann").add("cmid", "").add("body", "b").str()},
       "bad_field", 18},
      {Where::codec, "room name with a newline",
       {request_frame("join", 19).add("room", "gen\neral").add("user", "ann").str()}, "bad_field", 19},
      {Where::codec, "history with before and after",
       {request_frame("history", 20).add("room", "general").add("before", 5).add("after", 1).str()}, "bad_field", 20},
      {Where::codec, "limit is negative", {request_frame("history", 21).add("room", "general").add("limit", -5).str()},
       "bad_field", 21},
      {Where::codec, "publish to a missing room",
       {request_frame("publish", 22).add("room", "nowhere").add("user", "ann").add("cmid", "c").add("body", "b").str()},
       "no_such_room", 22},
      {Where::codec, "publish by a non-member",
       {request_frame("publish", 23).add("room", "general").add("user", "eve").add("cmid", "c").add("body", "b").str()},
       "not_member", 23},
      {Where::codec, "history of a missing room", {request_frame("history", 24).add("room", "nowhere").str()},
       "no_such_room", 24},
      {Where::codec, "a role that is not one",
       {request_frame("set_role", 25).add("room", "general").add("user", "ann").add("role", "boss").str()},
       "bad_field", 25},
      {Where::codec, "'as' that is not a name", {request_frame("history", 26).add("room", "general").add("as", "").str()},
       "bad_field", 26},
      {Where::codec, "a non-owner deleting the room",
       {request_frame("delete_room", 27).add("room", "general").add("as", "eve").str()}, "forbidden", 27},
      {Where::codec, "publishing for another user",
       {request_frame("publish", 28).add("room", "general").add("user", "ann").add("cmid", "c").add("body", "b")
            .add("as", "eve").str()},
       "forbidden", 28},
      {Where::codec, "publish_batch with no items",
       {request_frame("publish_batch", 29).add("room", "general").add("user", "ann").add_raw("items", "\x90").str()},
       "bad_field", 29},
      {Where::codec, "publish_batch item that is not [cmid, body]",
       {request_frame("publish_batch", 30).add("room", "general").add("user", "ann").add_raw("items", "\x91\x91\xa1" "c")
            .str()},
       "bad_field", 30},
      {Where::codec, "publish_batch item body not UTF-8",
       {request_frame("publish_batch", 31).add("room", "general").add("user", "ann")
            .add_raw("items", std::string("\x91\x92\xa1" "c" "\xa2\xc3\x28")).str()},
       "bad_utf8", 31},
      {Where::codec, "publish_batch of 1001 items",
       {request_frame("publish_batch", 32).add("room", "general").add("user", "ann").add_raw("items", [] {
          std::string items("\xdc\x03\xe9", 3);
          for (int i = 0; i < 1001; ++i) items += "\x92\xa1" "c" "\xa1" "b";
          return items;
        }()).str()},
       "too_large", 32},
      {Where::codec, "publish_batch by a non-member",
       {request_frame("publish_batch", 33).add("room", "general").add("user", "eve").add_raw("items", "\x91\x92\xa1" "c" "\xa1" "b")
            .str()},
       "not_member", 33},

      // ---- the WebSocket bridge (docs/PROTOCOL.md section 10)
      {Where::bridge_text, "not JSON", {"hello"}, "bad_frame"},
      {Where::bridge_text, "a JSON array", {"[1,2,3]"}, "bad_frame"},
      {Where::bridge_text, "JSON nested 40 deep", {std::string(40, '[') + std::string(40, ']')}, "too_large"},
      {Where::bridge_text, "no id", {R"({"op":"ping"})"}, "bad_field"},
      {Where::bridge_text, "a negative id", {R"({"op":"ping","id":-1})"}, "bad_field"},
      {Where::bridge_text, "no op", {R"({"id":1})"}, "bad_field"},
      {Where::bridge_text, "publish before auth", {R"({"op":"publish","id":1,"room":"general","body":"b"})"},
       "unauthenticated"},
      {Where::bridge_text, "auth with an empty user", {R"({"op":"auth","id":1,"user":""})"}, "bad_field"},
      {Where::bridge_text, "auth with a token on a node without a token key",
       {R"({"op":"auth","id":1,"token":"abc"})"}, "bad_field"},
      {Where::bridge_text, "auth twice", {kAuth, R"({"op":"auth","id":2,"user":"bob"})"}, "bad_field"},
      {Where::bridge_text, "unknown op", {kAuth, R"({"op":"dance","id":2})"}, "unknown_op"},
      {Where::bridge_text, "subscribe to a room that is a number", {kAuth, R"({"op":"subscribe","id":2,"room":5})"},
       "bad_field"},
      {Where::bridge_text, "publish to a missing room",
       {kAuth, R"({"op":"publish","id":2,"room":"nowhere","cmid":"c","body":"b"})"}, "no_such_room"},
      {Where::bridge_text, "publish by a non-member",
       {R"({"op":"auth","id":1,"user":"eve"})", R"({"op":"publish","id":2,"room":"general","cmid":"c","body":"b"})"},
       "not_member"},
      {Where::bridge_binary, "not msgpack", {"\xc1"}, "bad_frame"},
      {Where::bridge_binary, "a msgpack array", {"\x93\x01\x02\x03"}, "bad_frame"},
      {Where::bridge_binary, "a map header claiming 4 billion entries", {std::string("\xdf\xff\xff\xff\xff", 5)},
       "too_large"},
      {Where::bridge_binary, "an id that is a string", {pack({{"op", "ping"}, {"id", "x"}})}, "bad_field"},
      {Where::bridge_binary, "history with a limit that is a string",
       {pack({{"op", "auth"}, {"id", 1}, {"user", "ann"}}),
        pack({{"op", "history"}, {"id", 2}, {"room", "general"}, {"limit", "all"}})},
       "bad_field"},

      // ---- the command line (README, docs/OPERATIONS.md)
      {Where::cli, "an unknown command", {"dance"}, "A subcommand is required"},
      {Where::cli, "a durability that is neither sync nor nosync", {"run", "--durability", "sometimes"}, "sometimes"},
      {Where::cli, "a bridge address that is a host name", {"run", "--bridge", "localhost:7410"},
       "the bridge address must be HOST:PORT"},
      {Where::cli, "a topology file that does not exist", {"run", "--config", "/nonexistent/topo.toml", "--node", "a"},
       "/nonexistent/topo.toml"},
      {Where::cli, "post to a room with an empty user", {"post", "--connect", "{client}", "--room", "general",
                                                         "--user", "", "hello"},
       "user"},
      {Where::cli, "history of a missing room", {"history", "--connect", "{client}", "--room", "nowhere"},
       "no_such_room"},
      {Where::cli, "a token ttl that is no duration", {"token", "--user", "ann", "--key", "{key}", "--ttl", "forever"},
       "forever"},
      {Where::cli, "a token signed with a key file that does not exist",
       {"token", "--user", "ann", "--key", "/nonexistent.key"}, "/nonexistent.key"},

      // ---- topology files (docs/TOPOLOGY.md)
      {Where::topology, "TOML syntax", {node + "publish = \"tcp://x:1\n"}, "topo.toml:3:"},
      {Where::topology, "an unknown key", {"colour = \"blue\"\n" + node}, "topo.toml:1:1: unknown key 'colour'"},
      {Where::topology, "a bad durability", {node + "durability = \"sometimes\"\n"}, "\"sync\" or \"nosync\""},
      {Where::topology, "a node without a client endpoint", {"[nodes.a]\ndata = \"d\"\n"}, "has no 'client' endpoint"},
      {Where::topology, "a shard of an unknown node", {node + "[[shards]]\nname = \"s1\"\nowner = \"z\"\n"},
       "owned by 'z', which is not a node"},
      {Where::topology, "a limit out of range", {node + "[limits]\nmax_depth = 1000\n"}, "between 2 and 64"},
      {Where::topology, "an empty file", {""}, "at least one node"},
      {Where::topology, "an empty [nodes] table", {"[nodes]\n"}, "topo.toml:1:1: [nodes] has no [nodes.NAME] table"},
      // Found by fuzz.topology: toml++ 3.3.0 built header-only with assertions aborts
      // here (upstream PR marzer/tomlplusplus#301); as linked, it is an error.
      {Where::topology, "a table header of three brackets", {"[[[1]]]\n" + node}, "topo.toml:1:3: Error while parsing key"},
  };
}

/// A WebSocket client of the bridge (Boost.Beast), every read bounded by a deadline.
class WsClient {
 public:
  explicit WsClient(std::uint16_t port) {
    tcp::resolver resolver(ioc_);
    asio::connect(ws_.next_layer(), resolver.resolve("127.0.0.1", std::to_string(port)));
    ws_.handshake("127.0.0.1:" + std::to_string(port), "/");
  }
  void send(bool binary, const std::string& frame) {
    ws_.binary(binary);
    ws_.write(asio::buffer(frame));
  }
  /// The next frame, decoded; nullopt if none came within kWait or the connection ended.
  std::optional<json> read() {
    boost::beast::flat_buffer buffer;
    std::optional<boost::system::error_code> done;
    ws_.async_read(buffer, [&](boost::system::error_code ec, std::size_t) { done = ec; });
    ioc_.restart();
    ioc_.run_for(kWait);
    if (!done) {
      boost::system::error_code ignored;
      ws_.next_layer().close(ignored);
      ioc_.restart();
      ioc_.run();
      return std::nullopt;
    }
    if (*done) return std::nullopt;
    const std::string data = boost::beast::buffers_to_string(buffer.data());
    json frame = ws_.got_binary() ? json::from_msgpack(data, true, false) : json::parse(data, nullptr, false);
    return frame;
  }
  /// Reads until an error reply (skipping replies, messages and events); nullopt if none.
  std::optional<json> read_error() {
    while (auto frame = read())
      if (frame->value("op", "") == "error") return frame;
    return std::nullopt;
  }

 private:
  asio::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
};

std::uint16_t bridge_port(const std::string& ready_line) {
  std::smatch m;
  const std::regex url(R"( bridge=ws://[^ ]*:(\d+)/)");
  if (!std::regex_search(ready_line, m, url)) return 0;
  return static_cast<std::uint16_t>(std::stoi(m[1].str()));
}

/// What the node answers to the frames of one ZeroMQ message; nullopt if no readable reply.
std::optional<Reply> call(zmq::socket_t& dealer, const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i)
    dealer.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(kWait)) == 0) return std::nullopt;
  zmq::message_t reply;
  (void)dealer.recv(reply);
  auto decoded = decode_reply(std::string_view(static_cast<const char*>(reply.data()), reply.size()), Limits{});
  if (!decoded) return std::nullopt;
  return *decoded;
}

}  // namespace

TEST(BadInputsCatalogue, EveryBadInputGetsItsErrorAndTheNodeKeepsServing) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "127.0.0.1:0"});
  const std::uint16_t port = bridge_port(node.output());
  ASSERT_NE(port, 0) << "no bridge in the ready line: " << node.output();
  {
    client::Client setup(switchboard::testing::options_for(node));  // CURVE, with the node's local client keys
    ASSERT_TRUE(setup.create_room("general", "ann"));
  }

  const auto key_file = data.path() / "tokens.key";
  ASSERT_EQ(switchboard::testing::run_command({"keygen", "--for", "tokens", "--out", key_file.string()}).status, 0);

  const auto rows = catalogue();
  ASSERT_GE(rows.size(), 30u);
  std::map<Where, int> per_door;
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  client::connect_socket(dealer, switchboard::testing::options_for(node), node.client_endpoint());

  for (const auto& row : rows) {
    SCOPED_TRACE(where_name(row.where) + ": " + row.name);
    ++per_door[row.where];
    switch (row.where) {
      case Where::codec: {
        auto reply = call(dealer, row.input);
        ASSERT_TRUE(reply) << "no readable reply";
        ASSERT_TRUE(std::holds_alternative<ErrorReply>(reply->body)) << "accepted: " << op_name(reply->body);
        const auto& error = std::get<ErrorReply>(reply->body);
        EXPECT_EQ(errc_name(error.code), row.expected) << error.message;
        EXPECT_FALSE(error.message.empty());
        EXPECT_EQ(reply->id, row.expected_id);
        break;
      }
      case Where::bridge_text:
      case Where::bridge_binary: {
        WsClient ws(port);
        for (const auto& frame : row.input) ws.send(row.where == Where::bridge_binary, frame);
        auto error = ws.read_error();
        ASSERT_TRUE(error) << "no error reply";
        EXPECT_EQ(error->value("code", ""), row.expected) << error->dump();
        EXPECT_FALSE(error->value("message", "").empty());
        break;
      }
      case Where::cli: {
        std::vector<std::string> args = row.input;
        for (auto& a : args) {
          if (a == "{key}") a = key_file.string();
        }
        for (std::size_t i = 0; i < args.size(); ++i)
          if (args[i] == "{client}") {  // a client command: the node's endpoint and its local CURVE keys
            args[i] = node.client_endpoint();
            args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, {"--keys", node.keys_dir()});
          }
        auto result = switchboard::testing::run_command(args);
        EXPECT_NE(result.status, 0) << result.out;
        EXPECT_NE((result.out + result.err).find(row.expected), std::string::npos)
            << "stdout: " << result.out << "\nstderr: " << result.err;
        break;
      }
      case Where::topology: {
        TempDir dir;
        const auto file = dir.path() / "topo.toml";
        std::ofstream(file) << row.input.at(0);
        auto result = switchboard::testing::run_command({"check-config", file.string()});
        EXPECT_EQ(result.status, 1) << result.out;
        EXPECT_NE((result.out + result.err).find(row.expected), std::string::npos)
            << "stdout: " << result.out << "\nstderr: " << result.err;
        break;
      }
    }
  }
  EXPECT_GE(per_door.size(), 5u) << "every door has rows";

  // Still serving: a ZeroMQ request on the same connection, and a WebSocket publish.
  auto pong = call(dealer, {encode_request({99, Ping{}})});
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->id, 99u);
  EXPECT_TRUE(std::holds_alternative<PingOk>(pong->body));
  WsClient ws(port);
  ws.send(false, kAuth);
  ws.send(false, R"({"op":"publish","id":2,"room":"general","cmid":"after-all","body":"still here"})");
  std::optional<json> ack;
  while ((ack = ws.read()) && ack->value("id", 0) != 2) {
  }
  ASSERT_TRUE(ack) << "no reply to a good publish";
  EXPECT_EQ(ack->value("op", ""), "publish") << ack->dump();
  EXPECT_EQ(ack->value("seq", 0), 1) << ack->dump();
  EXPECT_EQ(node.stop(), 0) << "the node must still be alive and stop cleanly";
}
