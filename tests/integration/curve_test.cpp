// CURVE on real node processes: listed client keys are admitted, unlisted ones and
// plain clients never get an answer (and the node logs the refused key, or the failed
// handshake of a client without CURVE), nodes link
// to each other with their own keys, and bad key files stop the start naming them.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/curve.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using switchboard::testing::free_port;
using switchboard::testing::run_command;

namespace {

std::string endpoint() { return "tcp://127.0.0.1:" + std::to_string(free_port()); }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Waits until `file` holds `text`; false if it did not within `patience`.
bool wait_for_log(const std::filesystem::path& file, const std::string& text,
                  std::chrono::seconds patience = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    if (read_file(file).find(text) != std::string::npos) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // between polls of the log, up to the deadline
  }
}

/// `switchboard keygen --for curve --out FILE`: the keypair it wrote (public key as printed).
transport::CurveKeypair keygen(const std::filesystem::path& file) {
  auto r = run_command({"keygen", "--for", "curve", "--out", file.string()});
  EXPECT_EQ(r.status, 0) << r.err;
  auto keys = transport::load_curve_keypair(file);
  EXPECT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(r.out, keys->public_key + "\n");
  return keys ? *keys : transport::CurveKeypair{};
}

/// A raw DEALER sends a ping to `at` (with `curve`, if any) and waits `patience` for
/// any answer.
bool answers_ping(const std::string& at, const std::optional<transport::CurveClient>& curve,
                  std::chrono::milliseconds patience = std::chrono::milliseconds(1500)) {
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  client::ClientOptions options;
  options.curve = curve;
  client::connect_socket(dealer, options, at);
  const std::string ping = transport::encode_request({1, transport::Ping{}});
  dealer.send(zmq::buffer(ping), zmq::send_flags::none);
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  return zmq::poll(&item, 1, patience) == 1;
}

}  // namespace

TEST(Curve, KeygenWritesAPrivateSecretAndPrintsThePublicKey) {
  TempDir dir;
  const auto file = dir.path() / "ann.key";
  const auto keys = keygen(file);
  struct stat secret {}, pub {};
  ASSERT_EQ(::stat(file.c_str(), &secret), 0);
  ASSERT_EQ(::stat((file.string() + ".pub").c_str(), &pub), 0);
  EXPECT_EQ(secret.st_mode & 0777, 0600u);
  EXPECT_EQ(pub.st_mode & 0777, 0644u);
  EXPECT_EQ(read_file(file.string() + ".pub"), keys.public_key + "\n");
  EXPECT_TRUE(transport::valid_curve_key(keys.public_key));
}

TEST(Curve, ListedKeysAreServedUnlistedAndPlainClientsAreRefusedAndLogged) {
  TempDir dir;
  const auto ann = keygen(dir.path() / "ann.key");
  std::filesystem::create_directories(dir.path() / "clients");
  const auto bob = keygen(dir.path() / "clients" / "bob.key");
  std::filesystem::remove(dir.path() / "clients" / "bob.key");  // the node needs the public half only
  const auto file = dir.path() / "topo.toml", log = dir.path() / "node.log";
  std::ofstream(file) << "[nodes.solo]\nclient = \"" << endpoint() << "\"\ndata = \"" << (dir.path() / "data").string()
                      << "\"\ndurability = \"nosync\"\n[security]\nclient_keys = [\"" << ann.public_key
                      << "\"]\nclient_keys_dir = \"" << (dir.path() / "clients").string() << "\"\nlocal_client = false\n";
  NodeProcess node(NodeProcess::Args{{"--config", file.string(), "--node", "solo", "--bridge", "off"}, {}, "switchboard ready ",
                                     log.string()});
  ASSERT_TRUE(transport::valid_curve_key(node.curve_public())) << node.output();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data" / "keys" / "client.key")) << "local_client = false";

  // Listed, inline and from the directory: a full client works, publish and subscribe.
  for (const auto& keys : {ann, bob}) {
    client::ClientOptions o;
    o.endpoint = node.client_endpoint();
    o.curve = transport::CurveClient{keys, node.curve_public()};
    client::Client c(o);
    ASSERT_TRUE(c.create_room("r", "u"));
    ASSERT_TRUE(c.subscribe("r"));
    auto ack = c.publish("r", "u", "hi");
    ASSERT_TRUE(ack) << ack.error().message;
    auto m = c.next(client::Millis(10'000));
    ASSERT_TRUE(m && *m) << "delivered through the CURVE publish endpoint";
    EXPECT_EQ((*m)->seq, ack->seq);
  }

  // Unlisted: the handshake is refused, no request gets through, the node says whose key.
  const auto stranger = transport::generate_curve_keypair();
  EXPECT_FALSE(answers_ping(node.client_endpoint(), transport::CurveClient{stranger, node.curve_public()}));
  EXPECT_TRUE(wait_for_log(log, "key " + stranger.public_key + ": the key is not listed in the topology"))
      << read_file(log);
  EXPECT_TRUE(wait_for_log(log, "to chat.clients " + node.client_endpoint())) << read_file(log);
  // A listed key cannot pass for the server either: the wrong server key never connects.
  EXPECT_FALSE(answers_ping(node.client_endpoint(), transport::CurveClient{ann, stranger.public_key}));
  // Plain (no CURVE): refused at the handshake, and logged though ZAP never sees it.
  EXPECT_FALSE(answers_ping(node.client_endpoint(), std::nullopt));
  EXPECT_TRUE(wait_for_log(log, "a connection to " + node.client_endpoint() +
                                    " (chat.clients) failed its handshake before offering a CURVE key"))
      << read_file(log);
  EXPECT_TRUE(answers_ping(node.client_endpoint(), transport::CurveClient{ann, node.curve_public()}))
      << "the node still serves the listed key";
  EXPECT_EQ(node.stop(), 0);
}

TEST(Curve, TheEmbeddedDefaultMakesItsKeysAndTheCliFindsThem) {
  TempDir dir;
  NodeProcess node(dir.path() / "data", {"--durability", "nosync", "--bridge", "off"});
  const auto keys = dir.path() / "data" / "keys";
  for (const char* f : {"node.key", "client.key"}) {
    struct stat info {};
    ASSERT_EQ(::stat((keys / f).c_str(), &info), 0) << f;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << f;
  }
  EXPECT_EQ(read_file(keys / "node.key.pub"), node.curve_public() + "\n");
  auto post = run_command({"post", "--keys", keys.string(), "--connect", node.client_endpoint(), "--room", "r", "--user",
                           "ann", "hello"});
  EXPECT_EQ(post.status, 0) << post.err;
  EXPECT_EQ(post.out, "1\n");
  // Without the keys the CLI says where it looked.
  auto lost = run_command({"post", "--keys", (dir.path() / "nowhere").string(), "--connect", node.client_endpoint(),
                           "--room", "r", "--user", "ann", "hello"});
  EXPECT_EQ(lost.status, 1);
  EXPECT_NE(lost.err.find("nowhere/node.key.pub"), std::string::npos) << lost.err;
  EXPECT_NE(lost.err.find("--keys"), std::string::npos) << lost.err;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Curve, EachSetupMistakeGetsItsOwnErrorAndTheNodeSaysWhatItSaw) {
  TempDir dir;
  const auto log = dir.path() / "node.log", data = dir.path() / "data";
  NodeProcess node(NodeProcess::Args{{"--data", data.string(), "--listen", "tcp://127.0.0.1:*", "--durability", "nosync",
                                      "--bridge", "off", "--metrics", "off"},
                                     {}, "switchboard ready ", log.string()});
  const auto keys = data / "keys";
  const std::string at = node.client_endpoint();
  auto post = [&](const std::filesystem::path& with, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"post", "--keys", with.string(), "--connect", at, "--room", "r", "--user", "ann", "hi"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_command(args);
  };
  auto copy_keys = [&](const std::string& name) {
    const auto to = dir.path() / name;
    std::filesystem::create_directories(to);
    for (const char* f : {"node.key.pub", "client.key", "client.key.pub"})
      std::filesystem::copy_file(keys / f, to / f);
    return to;
  };
  // A client key the node does not admit.
  const auto stranger = copy_keys("stranger");
  std::filesystem::remove(stranger / "client.key");
  std::filesystem::remove(stranger / "client.key.pub");
  keygen(stranger / "client.key");
  auto refused = post(stranger);
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("cannot talk to " + at + ": the other end refused this side's CURVE key (ZAP status 400)"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("--keys"), std::string::npos) << refused.err;
  // Another node's public key.
  const auto elsewhere = copy_keys("elsewhere");
  std::filesystem::remove(elsewhere / "node.key.pub");
  std::filesystem::remove(elsewhere / "node.key");
  keygen(dir.path() / "other-node.key");
  std::filesystem::copy_file(dir.path() / "other-node.key.pub", elsewhere / "node.key.pub");
  auto wrong_server = post(elsewhere);
  EXPECT_EQ(wrong_server.status, 1);
  EXPECT_NE(wrong_server.err.find("the public key this side holds for it is not its key"), std::string::npos)
      << wrong_server.err;
  EXPECT_TRUE(wait_for_log(log, "holds another public key for this node than this node's")) << read_file(log);
  // CURVE off on the client only.
  auto plain = post(keys, {"--curve", "off"});
  EXPECT_EQ(plain.status, 1);
  EXPECT_NE(plain.err.find("the other end uses CURVE and this side does not"), std::string::npos) << plain.err;
  // (The node sees the mismatch too, or, when the client has hung up first, a connection
  // gone mid-handshake: which one depends on who is quicker, so its log is not checked.)
  // And the right keys still work.
  auto fine = post(keys);
  EXPECT_EQ(fine.status, 0) << fine.err;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Curve, OffIsExplicitWarnedAndPlain) {
  TempDir dir;
  const auto log = dir.path() / "node.log";
  NodeProcess node(NodeProcess::Args{{"--data", (dir.path() / "data").string(), "--listen", "tcp://127.0.0.1:*",
                                      "--durability", "nosync", "--bridge", "off", "--curve", "off"},
                                     {}, "switchboard ready ", log.string()});
  EXPECT_EQ(node.curve_public(), "off");
  EXPECT_TRUE(wait_for_log(log, "CURVE is off")) << read_file(log);
  EXPECT_TRUE(answers_ping(node.client_endpoint(), std::nullopt, std::chrono::milliseconds(10'000)));
  auto post = run_command({"post", "--curve", "off", "--connect", node.client_endpoint(), "--room", "r", "--user", "ann",
                           "in the clear"});
  EXPECT_EQ(post.status, 0) << post.err;
  EXPECT_EQ(node.stop(), 0);
}

/// A topology of nodes a and b (shards s1 on a, s2 on b), with keys made by keygen in
/// `dir` and given as curve_secret_file and curve_public, and `client` the one client key.
struct TwoNodes {
  TwoNodes(const std::filesystem::path& dir, const std::string& client)
      : a(keygen(dir / "a.key")), b(keygen(dir / "b.key")), file(dir / "topo.toml") {
    std::ofstream out(file);
    for (const auto& [name, keys] : {std::pair{"a", a}, std::pair{"b", b}}) {
      out << "[nodes." << name << "]\n";
      for (const char* key : {"client", "publish", "presence", "presence_pub"}) out << key << " = \"" << endpoint() << "\"\n";
      out << "peer = \"" << peer[name] << "\"\npresence_peer = \"" << endpoint() << "\"\ndata = \""
          << (dir / name).string() << "\"\ndurability = \"nosync\"\ncurve_secret_file = \""
          << (dir / (std::string(name) + ".key")).string() << "\"\ncurve_public = \"" << keys.public_key << "\"\n";
    }
    out << "[[shards]]\nname = \"s1\"\nowner = \"a\"\n[[shards]]\nname = \"s2\"\nowner = \"b\"\n"
        << "[security]\nclient_keys = [\"" << client << "\"]\nlocal_client = false\n";
  }
  transport::CurveKeypair a, b;
  std::map<std::string, std::string> peer = {{"a", endpoint()}, {"b", endpoint()}};
  std::filesystem::path file;
};

TEST(Curve, TwoNodesLinkWithTheirListedKeysAndKeepClientsOffTheirPeerLinks) {
  TempDir dir;
  const auto ann = keygen(dir.path() / "ann.key");
  const TwoNodes topology(dir.path(), ann.public_key);
  const auto &file = topology.file, log = dir.path() / "a.log";
  const auto &a = topology.a, &b = topology.b;
  const std::string a_peer = topology.peer.at("a");
  NodeProcess node_a(NodeProcess::Args{{"--config", file.string(), "--node", "a"}, {}, "switchboard ready ", log.string()});
  NodeProcess node_b(NodeProcess::Args{{"--config", file.string(), "--node", "b"}});
  EXPECT_EQ(node_a.curve_public(), a.public_key);
  EXPECT_EQ(node_b.curve_public(), b.public_key);

  auto loaded = router::load_topology(file);
  ASSERT_TRUE(loaded.ok());
  const router::RoomPlacement placement(loaded.topology.shards);
  std::string room;
  for (int i = 0; room.empty(); ++i)
    if (placement.owner_of("far-" + std::to_string(i)).owner == "b") room = "far-" + std::to_string(i);

  // Through a, to b's room: forwarded over a's CURVE link to b, relayed back over b's PUB.
  client::ClientOptions o;
  o.endpoint = node_a.client_endpoint();
  o.curve = transport::CurveClient{ann, a.public_key};
  client::Client c(o);
  // The link between the nodes comes up within a few heartbeats; until then b's rooms
  // are `unavailable` at a.
  auto created = c.create_room(room, "ann");
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       !created && created.error().code == errc::unavailable && std::chrono::steady_clock::now() < deadline;)
    created = c.create_room(room, "ann");
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_TRUE(c.subscribe(room, 0));
  auto ack = c.publish(room, "ann", "across");
  ASSERT_TRUE(ack) << ack.error().message;
  auto m = c.next(client::Millis(20'000));
  ASSERT_TRUE(m && *m) << "the message came back from b";
  EXPECT_EQ((*m)->body, "across");

  // A client key on a's node-to-node endpoint is refused, though the key is listed.
  EXPECT_FALSE(answers_ping(a_peer, transport::CurveClient{ann, a.public_key}));
  EXPECT_TRUE(wait_for_log(log, "key " + ann.public_key + ": the key of client may not use a node-to-node endpoint"))
      << read_file(log);
  EXPECT_EQ(node_a.stop(), 0);
  EXPECT_EQ(node_b.stop(), 0);
}

TEST(Curve, ANodeLogsAFailedHandshakeWithAPeerOnce) {
  TempDir dir;
  const TwoNodes topology(dir.path(), transport::generate_curve_keypair().public_key);
  const auto log = dir.path() / "a.log";
  NodeProcess node_a(
      NodeProcess::Args{{"--config", topology.file.string(), "--node", "a"}, {}, "switchboard ready ", log.string()});
  // b without CURVE: a's CURVE link to b's peer endpoint fails at every reconnection.
  NodeProcess node_b(NodeProcess::Args{{"--config", topology.file.string(), "--node", "b", "--curve", "off"}});
  const std::string line = "actor chat: the handshake with @b at " + topology.peer.at("b") + " failed: ";
  ASSERT_TRUE(wait_for_log(log, line)) << read_file(log);
  EXPECT_TRUE(wait_for_log(log, "actor presence: the handshake with @b at "))
      << "presence's link fails the same way: " << read_file(log);
  const std::string text = read_file(log);
  EXPECT_EQ(text.find(line), text.rfind(line)) << "logged once, not at every reconnection: " << text;
  EXPECT_EQ(node_a.stop(), 0);
  EXPECT_EQ(node_b.stop(), 0);
}

TEST(Curve, BadKeysStopTheStartNamingTheFileAndTheTopologyKey) {
  TempDir dir;
  const auto a = keygen(dir.path() / "a.key");
  auto start = [&](const std::string& table, const std::string& security = {}) {
    const auto file = dir.path() / "topo.toml";
    std::ofstream(file) << "[nodes.a]\nclient = \"" << endpoint() << "\"\ndata = \"" << (dir.path() / "data").string()
                        << "\"\n" << table << security;
    return run_command({"run", "--config", file.string(), "--node", "a", "--bridge", "off"});
  };
  ::chmod((dir.path() / "a.key").c_str(), 0640);
  auto readable = start("curve_secret_file = \"" + (dir.path() / "a.key").string() + "\"\n");
  EXPECT_EQ(readable.status, 1);
  EXPECT_NE(readable.err.find("[nodes.a] curve_secret_file: secret key file " + (dir.path() / "a.key").string() +
                              " has mode 0640"),
            std::string::npos)
      << readable.err;
  ::chmod((dir.path() / "a.key").c_str(), 0600);

  const auto other = transport::generate_curve_keypair();
  auto mismatch = start("curve_secret_file = \"" + (dir.path() / "a.key").string() + "\"\ncurve_public = \"" +
                        other.public_key + "\"\n");
  EXPECT_EQ(mismatch.status, 1);
  EXPECT_NE(mismatch.err.find("[nodes.a] curve_public is not the public key of"), std::string::npos) << mismatch.err;

  std::filesystem::create_directories(dir.path() / "clients");
  std::ofstream(dir.path() / "clients" / "eve.pub") << "not a key\n";
  auto junk = start("", "[security]\nclient_keys_dir = \"" + (dir.path() / "clients").string() + "\"\n");
  EXPECT_EQ(junk.status, 1);
  EXPECT_NE(junk.err.find("[security] client_keys_dir: " + (dir.path() / "clients" / "eve.pub").string() +
                          " does not hold a CURVE public key"),
            std::string::npos)
      << junk.err;

  auto bad_inline = start("", "[security]\nclient_keys = [\"tooshort\"]\n");
  EXPECT_EQ(bad_inline.status, 1);
  EXPECT_NE(bad_inline.err.find("topo.toml:5:"), std::string::npos) << "the line of the bad key: " << bad_inline.err;
}

TEST(Curve, AGrantedKeyActsOnlyWithinItsGrantAndOtherKeysKeepEveryRight) {
  TempDir dir;
  const auto bot = keygen(dir.path() / "bot.key");
  const auto auditor = keygen(dir.path() / "auditor.key");
  const auto file = dir.path() / "topo.toml";
  std::ofstream(file) << "[nodes.solo]\nclient = \"" << endpoint() << "\"\ndata = \"" << (dir.path() / "data").string()
                      << "\"\ndurability = \"nosync\"\n"
                      << "[security.grants.bot]\nkeys = [\"" << bot.public_key
                      << "\"]\nusers = [\"bot\"]\nrooms = [\"ops-*\"]\nops = \"write\"\n"
                      << "[security.grants.auditor]\nkeys = [\"" << auditor.public_key << "\"]\nops = \"read\"\n";
  NodeProcess node(NodeProcess::Args{{"--config", file.string(), "--node", "solo", "--bridge", "off"}, {}, "switchboard ready "});
  auto options = [&](const transport::CurveKeypair& keys, std::optional<std::string> as) {
    client::ClientOptions o;
    o.endpoint = node.client_endpoint();
    o.curve = transport::CurveClient{keys, node.curve_public()};
    o.as = std::move(as);
    return o;
  };
  auto code = [](const auto& result) { return result ? errc::ok : result.error().code; };

  // The local client has every right: it sets the rooms up, for the node.
  auto local = client::load_local_keys(dir.path() / "data" / "keys");
  ASSERT_TRUE(local) << local.error().message;
  client::ClientOptions full_options;
  full_options.endpoint = node.client_endpoint();
  full_options.curve = *local;
  client::Client full(full_options);
  ASSERT_TRUE(full.create_room("ops-1", "ann"));
  ASSERT_TRUE(full.create_room("lobby", "ann"));
  ASSERT_TRUE(full.add_member("ops-1", "bot"));
  ASSERT_TRUE(full.add_member("lobby", "bot"));

  client::Client as_bot(options(bot, "bot"));
  auto ack = as_bot.publish("ops-1", "bot", "deployed");
  ASSERT_TRUE(ack) << ack.error().message;
  EXPECT_EQ(code(as_bot.publish("lobby", "bot", "not here")), errc::forbidden) << "a room outside its grant";
  EXPECT_EQ(code(as_bot.publish("ops-1", "ann", "as ann")), errc::forbidden) << "a user outside its grant";
  EXPECT_EQ(code(as_bot.delete_room("ops-1")), errc::forbidden) << "write, not manage";
  EXPECT_EQ(code(as_bot.rooms()), errc::forbidden) << "it may not list every room";
  client::Client bot_without_as(options(bot, std::nullopt));
  EXPECT_EQ(code(bot_without_as.publish("ops-1", "bot", "who am I")), errc::forbidden) << "it must say for whom";
  client::Client bot_as_ann(options(bot, "ann"));
  EXPECT_EQ(code(bot_as_ann.history("ops-1")), errc::forbidden);

  client::Client audit(options(auditor, std::nullopt));
  auto page = audit.history("ops-1");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->messages.size(), 1u);
  EXPECT_EQ(page->messages[0].body, "deployed");
  EXPECT_EQ(code(audit.publish("ops-1", "bot", "x")), errc::forbidden) << "read only";
  EXPECT_EQ(code(audit.join("lobby", "eve")), errc::forbidden);

  // Nothing refused was stored; the full key still may do all of it.
  auto history = full.history("ops-1");
  ASSERT_TRUE(history);
  EXPECT_EQ(history->messages.size(), 1u);
  EXPECT_TRUE(full.publish("lobby", "bot", "here, through a full key"));
  EXPECT_TRUE(full.delete_room("ops-1"));
  EXPECT_EQ(node.stop(), 0);
}
