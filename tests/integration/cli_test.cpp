// The switchboard command as an operator uses it: exit codes, output formats.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/transport/token.hpp"

using switchboard::testing::NodeProcess;
using switchboard::testing::run_command;
using switchboard::testing::TempDir;

namespace {
/// A node with no bridge and no metrics endpoint: only what a test of the client
/// commands needs.
const std::vector<std::string> kQuiet = {"--durability", "nosync", "--bridge", "off", "--metrics", "off"};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}
/// A loopback port held by a socket that does not listen (a connection there is
/// refused), and its endpoint; the descriptor is -1 if none could be had.
std::pair<int, std::string> refusing_endpoint() {
  const int held = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (held < 0 || ::bind(held, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(held, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return {-1, {}};
  return {held, "tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port))};
}

}  // namespace

TEST(Cli, PostPrintsTheSeqAndHistoryAndTailPrintJson) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  for (int i = 1; i <= 3; ++i) {
    auto r = run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "ann", "deploy " + std::to_string(i)});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::to_string(i) + "\n");
  }
  // Retrying a post with the same client message id stores it once.
  auto first = run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "bob", "--cmid", "x1", "hi"});
  auto again = run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "bob", "--cmid", "x1", "hi"});
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out, "4\n");
  EXPECT_EQ(again.out, "4\n");

  auto h = run_command({"history", "--keys", keys, "--connect", at, "--room", "ops", "--json"});
  ASSERT_EQ(h.status, 0) << h.err;
  auto rows = lines(h.out);
  ASSERT_EQ(rows.size(), 4u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto j = nlohmann::json::parse(rows[i]);
    EXPECT_EQ(j["room"], "ops");
    EXPECT_EQ(j["seq"], i + 1);
    EXPECT_TRUE(j["ts"].is_number_unsigned());
    EXPECT_EQ(j["user"], i < 3 ? "ann" : "bob");
    EXPECT_EQ(j["body"], i < 3 ? "deploy " + std::to_string(i + 1) : "hi");
  }
  auto page = run_command({"history", "--keys", keys, "--connect", at, "--room", "ops", "--limit", "2", "--before", "4"});
  ASSERT_EQ(page.status, 0);
  EXPECT_EQ(lines(page.out), (std::vector<std::string>{"[ops #2] ann: deploy 2", "[ops #3] ann: deploy 3"}));

  auto t = run_command({"tail", "--keys", keys, "--connect", at, "--room", "ops", "--from", "2", "--count", "3", "--json"});
  ASSERT_EQ(t.status, 0) << t.err;
  auto tail_rows = lines(t.out);
  ASSERT_EQ(tail_rows.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(nlohmann::json::parse(tail_rows[i])["seq"], i + 2);
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, StatusSaysWhetherAUserIsOnlineOrWhenTheyWereLastSeen) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::vector<std::string> ask = {"status", "--keys", node.keys_dir(), "--connect", node.client_endpoint(),
                                        "--user", "bob"};
  auto never = run_command(ask);
  ASSERT_EQ(never.status, 0) << never.err;
  EXPECT_EQ(never.out, "bob: offline\n") << "a user never seen has no last-seen time";

  auto options = switchboard::testing::options_for(node);
  switchboard::client::Client c(options);
  auto presence = switchboard::client::PresenceClient::connect(c, options);
  ASSERT_TRUE(presence) << presence.error().message;
  ASSERT_TRUE((*presence)->open("bob"));
  ASSERT_TRUE((*presence)->set_status(switchboard::transport::Availability::away, "lunch"));
  auto online = run_command(ask);
  EXPECT_EQ(online.out, "bob: online (away: lunch)\n") << online.err;

  const auto wall_ms = [] {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  };
  const std::uint64_t before = wall_ms();
  ASSERT_TRUE((*presence)->close());
  const std::uint64_t after = wall_ms();
  auto json = run_command({"status", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--user", "bob",
                           "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["online"], false);
  ASSERT_TRUE(j.contains("last_seen")) << json.out;
  EXPECT_GE(j["last_seen"].get<std::uint64_t>(), before);
  EXPECT_LE(j["last_seen"].get<std::uint64_t>(), after);
  auto text = run_command(ask);
  EXPECT_EQ(text.out.rfind("bob: offline, last seen 20", 0), 0u) << text.out;
  EXPECT_EQ(text.out.back(), '\n');
  EXPECT_NE(text.out.find("Z\n"), std::string::npos) << "UTC: " << text.out;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, UsageErrorsExitTwoAndFailuresExitOneWithAMessage) {
  EXPECT_EQ(run_command({}).status, 2);
  EXPECT_EQ(run_command({"post", "--room", "r"}).status, 2);  // no user, no text
  EXPECT_EQ(run_command({"history", "--room", "r", "--before", "1", "--after", "2"}).status, 2);
  EXPECT_EQ(run_command({"run", "--durability", "sometimes"}).status, 2);
  EXPECT_EQ(run_command({"frobnicate"}).status, 2);
  auto help = run_command({"tail", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--from"), std::string::npos);

  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  auto missing = run_command({"history", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "nowhere"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no_such_room"), std::string::npos) << missing.err;

  // A second node on the same endpoint cannot bind: exit 1 naming the endpoint and why.
  // Only the listen endpoint clashes: the others are any free port (derived from the
  // listen port they could meet the first node's own, which took free ports too), and
  // no bridge or metrics (their default addresses may be held by another test's node).
  auto clash = run_command({"run", "--data", (data.path() / "other").string(), "--listen", node.client_endpoint(),
                            "--publish", "tcp://127.0.0.1:*", "--presence", "tcp://127.0.0.1:*", "--presence-pub",
                            "tcp://127.0.0.1:*", "--bridge", "off", "--metrics", "off"});
  EXPECT_EQ(clash.status, 1);
  EXPECT_NE(clash.err.find("cannot bind " + node.client_endpoint() + ": Address already in use"), std::string::npos)
      << clash.err;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, ASecondNodeOnTheSameDataDirectoryIsRefusedNamingItAndTheProcessHoldingIt) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "r", "--user", "ann", "one"}).status, 0);
  auto second = run_command({"run", "--data", data.path().string(), "--listen", "tcp://127.0.0.1:*", "--bridge", "off",
                             "--metrics", "off"});
  EXPECT_EQ(second.status, 1);
  EXPECT_EQ(second.out.find("switchboard ready"), std::string::npos) << second.out;
  EXPECT_NE(second.err.find("'" + data.path().string() + "' is in use"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("process " + std::to_string(node.pid())), std::string::npos) << second.err;
  // The first node is untouched and goes on; once it stops, the directory is free again.
  auto two = run_command({"post", "--keys", keys, "--connect", at, "--room", "r", "--user", "ann", "two"});
  EXPECT_EQ(two.out, "2\n") << two.err;
  EXPECT_EQ(node.stop(), 0);
  NodeProcess again(data.path(), kQuiet);
  auto three = run_command({"post", "--keys", keys, "--connect", again.client_endpoint(), "--room", "r", "--user", "ann",
                            "three"});
  EXPECT_EQ(three.out, "3\n") << three.err;
  EXPECT_EQ(again.stop(), 0);
}

TEST(Cli, TailAndChatStopCleanlyOnCtrlCAndSigterm) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "den", "--user", "ann", "hi"}).status, 0);
  for (int signal : {SIGINT, SIGTERM}) {
    switchboard::testing::Interactive tail({"tail", "--keys", keys, "--connect", at, "--room", "den", "--from", "1"});
    ASSERT_TRUE(tail.wait_for("[den #1] ann: hi")) << tail.output();
    EXPECT_EQ(tail.signal_and_wait(signal), 0) << "tail, signal " << signal;
    switchboard::testing::Interactive chat({"chat", "--keys", keys, "--connect", at, "--room", "den", "--user", "bob"});
    ASSERT_TRUE(chat.wait_for("[den #1] ann: hi")) << chat.output();
    EXPECT_EQ(chat.signal_and_wait(signal), 0) << "chat, signal " << signal;
  }
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, ANodeThatIsNotThereIsSaidSoAfterOneAttempt) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::string keys = node.keys_dir();
  EXPECT_EQ(node.stop(), 0);  // its keys stay
  // A port held by a socket that does not listen: a connection there is refused.
  const auto [held, nowhere] = refusing_endpoint();
  ASSERT_GE(held, 0);
  auto r = run_command({"post", "--keys", keys, "--connect", nowhere, "--room", "r", "--user", "ann", "hello"});
  ::close(held);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("unavailable: no reply from " + nowhere + " after 1 attempt: nothing accepts connections there "
                       "(connection refused). Is the node running"),
            std::string::npos)
      << r.err;
}

TEST(Cli, ACommaSeparatedConnectMovesToTheNextNodeWhenOneDoesNotAnswer) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  // A port held by a socket that does not listen: nothing answers there.
  const auto [held, nowhere] = refusing_endpoint();
  ASSERT_GE(held, 0);
  auto r = run_command({"post", "--keys", keys, "--connect", nowhere + "," + at, "--room", "r", "--user", "ann", "hi"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  auto h = run_command({"history", "--keys", keys, "--connect", nowhere + "," + at, "--room", "r"});
  ::close(held);
  EXPECT_EQ(h.status, 0) << h.err;
  EXPECT_EQ(h.out, "[r #1] ann: hi\n");
  auto empty = run_command({"post", "--keys", keys, "--connect", at + ",", "--room", "r", "--user", "ann", "x"});
  EXPECT_EQ(empty.status, 1);
  EXPECT_NE(empty.err.find("has an empty endpoint"), std::string::npos) << empty.err;
  auto bad_key = run_command({"post", "--keys", keys, "--connect", at, "--node-key", at + "=short", "--room", "r",
                              "--user", "ann", "x"});
  EXPECT_EQ(bad_key.status, 1);
  EXPECT_NE(bad_key.err.find("is not ENDPOINT=KEY"), std::string::npos) << bad_key.err;
}

TEST(Cli, AFirstStartSaysWhereItWroteTheKeysAndTheReadyLineGivesThePagesAddress) {
  TempDir dir;
  const auto log = dir.path() / "node.log";
  const auto data = dir.path() / "data";
  NodeProcess node(NodeProcess::Args{{"--data", data.string(), "--listen", "tcp://127.0.0.1:*", "--durability",
                                      "nosync", "--bridge", "127.0.0.1:*", "--web", SWITCHBOARD_SOURCE_DIR "/examples/web",
                                      "--metrics", "127.0.0.1:*"},
                                     {}, "switchboard ready ", log.string()});
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("wrote a new CURVE keypair: " + (data / "keys" / "node.key").string()), std::string::npos) << text;
  EXPECT_NE(text.find("--keys " + (data / "keys").string()), std::string::npos) << text;
  const std::string& ready = node.output();
  const auto bridge = ready.find(" bridge=ws://127.0.0.1:");
  ASSERT_NE(bridge, std::string::npos) << ready;
  const std::string port = ready.substr(bridge + 23, ready.find('/', bridge + 23) - bridge - 23);
  EXPECT_NE(ready.find(" web=http://127.0.0.1:" + port + "/"), std::string::npos) << ready;
  // stats takes the metrics URL as the ready line prints it.
  const auto m = ready.find(" metrics=");
  ASSERT_NE(m, std::string::npos) << ready;
  const std::string url = ready.substr(m + 9, ready.find_first_of(" \n", m + 9) - m - 9);
  ASSERT_EQ(url.rfind("http://", 0), 0u) << url;
  auto stats = run_command({"stats", "--connect", url});
  EXPECT_EQ(stats.status, 0) << stats.err;
  EXPECT_NE(stats.out.find("node "), std::string::npos) << stats.out;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, ChatSendsTypedLinesAndShowsTheRoomLive) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "den", "--user", "ann", "before bob came"}).status, 0);

  switchboard::testing::Interactive chat({"chat", "--keys", keys, "--connect", at, "--room", "den", "--user", "bob"});
  ASSERT_TRUE(chat.wait_for("[den #1] ann: before bob came")) << chat.output();  // recent history first
  chat.write_line("hello from bob");
  ASSERT_TRUE(chat.wait_for("[den #2] bob: hello from bob")) << chat.output();    // own line, via the room
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "den", "--user", "ann", "hi bob"}).status, 0);
  ASSERT_TRUE(chat.wait_for("[den #3] ann: hi bob")) << chat.output();           // others, live
  EXPECT_EQ(chat.close_and_wait(), 0);  // end of input leaves the chat

  auto h = run_command({"history", "--keys", keys, "--connect", at, "--room", "den"});
  EXPECT_EQ(lines(h.out), (std::vector<std::string>{"[den #1] ann: before bob came", "[den #2] bob: hello from bob",
                                                    "[den #3] ann: hi bob"}));
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, CheckConfigAcceptsTheExamplesAndNamesEachMistakesLine) {
  for (const char* example : {"single-node.toml", "three-nodes.toml"}) {
    auto r = run_command({"check-config", std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/" + example});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("ok"), std::string::npos);
  }
  TempDir dir;
  auto file = dir.path() / "topo.toml";
  std::ofstream(file) << "[nodes.a]\nclient = \"tcp://127.0.0.1:7400\"\ndurability = \"maybe\"\n\n"
                         "[[shards]]\nname = \"s1\"\nowner = \"nobody\"\n";
  auto r = run_command({"check-config", file.string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(file.string() + ":3:14: 'durability'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(file.string() + ":7:9: shard 's1' is owned by 'nobody'"), std::string::npos) << r.err;
  // run refuses it the same way, before binding anything.
  auto run = run_command({"run", "--config", file.string(), "--node", "a"});
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find(file.string() + ":3:14:"), std::string::npos) << run.err;
  EXPECT_EQ(run_command({"run", "--config", file.string(), "--node", "a", "--listen", "tcp://127.0.0.1:1"}).status, 2)
      << "flags the file decides are refused beside --config";
}

TEST(Cli, RunFromATopologyFileTakesItsEndpointsDataAndLimits) {
  TempDir dir;
  auto file = dir.path() / "topo.toml";
  const std::string client = "tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port());
  std::ofstream(file) << "[nodes.solo]\nclient = \"" << client << "\"\npublish = \"tcp://127.0.0.1:*\"\n"
                      << "presence = \"tcp://127.0.0.1:*\"\npresence_pub = \"tcp://127.0.0.1:*\"\n"
                      << "data = \"" << (dir.path() / "store").string() << "\"\ndurability = \"nosync\"\n"
                      << "[limits]\nmax_body = 10\n";
  NodeProcess node(NodeProcess::Args{{"--config", file.string(), "--node", "solo"}});
  EXPECT_EQ(node.client_endpoint(), client);
  EXPECT_NE(node.output().find("node=solo"), std::string::npos);
  EXPECT_NE(node.output().find("durability=nosync"), std::string::npos);
  EXPECT_EQ(run_command({"post", "--keys", node.keys_dir(), "--connect", client, "--room", "r", "--user", "u", "short"}).status, 0);
  auto too_long = run_command({"post", "--keys", node.keys_dir(), "--connect", client, "--room", "r", "--user", "u", "eleven char"});
  EXPECT_EQ(too_long.status, 1) << "the file's max_body of 10 applies";
  EXPECT_NE(too_long.err.find("too_large"), std::string::npos) << too_long.err;
  EXPECT_EQ(node.stop(), 0);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "store" / "data.mdb"));
}

TEST(Cli, WherePrintsTheOwningShardAndNode) {
  auto embedded = run_command({"where", "--room", "general"});
  ASSERT_EQ(embedded.status, 0) << embedded.err;
  EXPECT_EQ(embedded.out, "room general: shard default, node embedded (tcp://127.0.0.1:7400)\n");
  const std::string three = std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/three-nodes.toml";
  std::map<std::string, int> nodes;
  for (int i = 0; i < 60; ++i) {
    auto r = run_command({"where", "--room", "room-" + std::to_string(i), "--config", three});
    ASSERT_EQ(r.status, 0) << r.err;
    auto at = r.out.find(", node ");
    ASSERT_NE(at, std::string::npos) << r.out;
    ++nodes[r.out.substr(at + 7, 1)];
  }
  EXPECT_EQ(nodes.size(), 3u) << "60 rooms land on all three nodes";
}

TEST(Cli, KeygenAndTokenIssueTokensThatVerifyWithThePublicKey) {
  TempDir dir;
  const std::string key = (dir.path() / "tokens.key").string();
  auto made = run_command({"keygen", "--for", "tokens", "--out", key});
  ASSERT_EQ(made.status, 0) << made.err;
  auto issued = run_command({"token", "--user", "ann", "--ttl", "2h", "--key", key, "--room", "lobby"});
  ASSERT_EQ(issued.status, 0) << issued.err;
  ASSERT_FALSE(issued.out.empty());
  const std::string token = issued.out.substr(0, issued.out.find('\n'));
  auto pub = switchboard::transport::load_token_public_key(key + ".pub");
  ASSERT_TRUE(pub) << pub.error().message;
  const auto now = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  auto claims = switchboard::transport::verify_token(token, *pub, now, {});
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->user, "ann");
  EXPECT_EQ(claims->rooms, std::vector<std::string>{"lobby"});
  EXPECT_GT(claims->expires_s, now + 7000);
  EXPECT_LE(claims->expires_s, now + 7200);
  EXPECT_FALSE(switchboard::transport::verify_token(token, *pub, now + 7201, {})) << "expired after its ttl";

  EXPECT_EQ(run_command({"token", "--user", "ann", "--ttl", "2 weeks", "--key", key}).status, 2);
  auto bad_user = run_command({"token", "--user", "a\tb", "--key", key});
  EXPECT_EQ(bad_user.status, 1);
  EXPECT_NE(bad_user.err.find("--user"), std::string::npos) << bad_user.err;
  EXPECT_EQ(run_command({"token", "--user", "ann", "--key", key + ".pub"}).status, 1) << "a public key cannot sign";
}

namespace {
std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST(Cli, KeygenNeverReplacesAKeySilently) {
  TempDir dir;
  for (const char* kind : {"tokens", "curve", "store"}) {
    const std::string key = (dir.path() / (std::string(kind) + ".key")).string();
    ASSERT_EQ(run_command({"keygen", "--for", kind, "--out", key}).status, 0) << kind;
    const std::string before = file_bytes(key);
    auto again = run_command({"keygen", "--for", kind, "--out", key});
    EXPECT_EQ(again.status, 1) << kind;
    EXPECT_NE(again.err.find("'" + key + "' exists"), std::string::npos) << again.err;
    EXPECT_EQ(file_bytes(key), before) << kind << ": unchanged";
    auto forced = run_command({"keygen", "--for", kind, "--out", key, "--force"});
    if (std::string(kind) == "store") {
      EXPECT_EQ(forced.status, 1) << "a store key is never replaced: the messages it sealed would be lost";
      EXPECT_EQ(file_bytes(key), before);
    } else {
      EXPECT_EQ(forced.status, 0) << forced.err;
      EXPECT_NE(file_bytes(key), before) << kind << ": replaced when asked";
    }
  }
  // A public half left alone is protected too.
  const std::string lone = (dir.path() / "lone.key").string();
  std::ofstream(lone + ".pub") << "x\n";
  auto r = run_command({"keygen", "--for", "curve", "--out", lone});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(lone + ".pub' exists"), std::string::npos) << r.err;
}

TEST(Cli, AStoreKeyEncryptsBodiesAtRestAndOnlyThatKeyOpensTheStore) {
  TempDir dir;
  const auto key = dir.path() / "store.key", other = dir.path() / "other.key";
  for (const auto& k : {key, other}) {
    auto made = run_command({"keygen", "--for", "store", "--out", k.string()});
    ASSERT_EQ(made.status, 0) << made.err;
    EXPECT_EQ(std::filesystem::status(k).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  const std::string written = file_bytes(key);
  auto again = run_command({"keygen", "--for", "store", "--out", key.string()});
  EXPECT_EQ(again.status, 1) << "a store key is never overwritten";
  EXPECT_EQ(file_bytes(key), written);

  const auto data = dir.path() / "data";
  const std::string secret = "the vault combination is 31-4-15";
  {
    NodeProcess node(data, {"--durability", "nosync", "--store-key", key.string()});
    auto posted = run_command(
        {"post", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "vault", "--user", "ann", secret});
    ASSERT_EQ(posted.status, 0) << posted.err;
    EXPECT_EQ(node.stop(), 0);
  }
  const std::string file = file_bytes(data / "data.mdb");
  EXPECT_EQ(file.find(secret), std::string::npos) << "the body is in the LMDB file in clear";
  EXPECT_EQ(file.find("31-4-15"), std::string::npos);
  EXPECT_NE(file.find("vault"), std::string::npos) << "room names stay in clear, as keys";

  auto wrong = run_command({"run", "--data", data.string(), "--listen", "tcp://127.0.0.1:*", "--bridge", "off",
                            "--store-key", other.string()});
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.err.find("another key"), std::string::npos) << wrong.err;
  auto none = run_command({"run", "--data", data.string(), "--listen", "tcp://127.0.0.1:*", "--bridge", "off"});
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("give its key"), std::string::npos) << none.err;
  std::filesystem::permissions(other, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  auto open_key = run_command({"run", "--data", data.string(), "--store-key", other.string()});
  EXPECT_EQ(open_key.status, 1);
  EXPECT_NE(open_key.err.find("chmod 600"), std::string::npos) << open_key.err;

  NodeProcess node(data, {"--durability", "nosync", "--store-key", key.string()});
  auto h = run_command({"history", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "vault"});
  ASSERT_EQ(h.status, 0) << h.err;
  EXPECT_EQ(h.out, "[vault #1] ann: " + secret + "\n");
  EXPECT_EQ(node.stop(), 0);
}

namespace {
/// The value of `name{labels}` in `switchboard stats --json` output (-1: no such sample).
double stat(const nlohmann::json& scrape, const std::string& name, const std::map<std::string, std::string>& labels,
            const char* field = "value") {
  for (const auto& family : scrape["metrics"]) {
    if (family["name"] != name) continue;
    for (const auto& sample : family["samples"]) {
      bool match = true;
      for (const auto& [k, v] : labels) match = match && sample["labels"].value(k, "") == v;
      if (match) return sample[field].get<double>();
    }
  }
  return -1;
}
}  // namespace

TEST(Cli, StatsPrintsARunningNodesMetricsAsATableOrJson) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--metrics", "127.0.0.1:*"});
  const auto at = node.output().find(" metrics=http://");
  ASSERT_NE(at, std::string::npos) << node.output();
  const std::string address = node.output().substr(at + 16, node.output().find("/metrics", at + 16) - at - 16);
  for (int i = 1; i <= 3; ++i)
    ASSERT_EQ(run_command({"post", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "ops",
                           "--user", "ann", "hi"}).status, 0);
  ASSERT_EQ(run_command({"history", "--keys", node.keys_dir(), "--connect", node.client_endpoint(), "--room", "nowhere"})
                .status,
            1);

  auto json = run_command({"stats", "--connect", address, "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  auto scrape = nlohmann::json::parse(json.out);
  EXPECT_EQ(scrape["node"], "embedded");
  EXPECT_EQ(stat(scrape, "switchboard_messages_received_total", {{"actor", "chat"}, {"type", "publish"}}), 3);
  EXPECT_EQ(stat(scrape, "switchboard_messages_received_total", {{"actor", "chat"}, {"type", "create_room"}}), 3);
  EXPECT_EQ(stat(scrape, "switchboard_errors_total", {{"actor", "chat"}, {"code", "no_such_room"}}), 1);
  EXPECT_EQ(stat(scrape, "switchboard_errors_total", {{"actor", "chat"}, {"code", "not_member"}}), 0);
  EXPECT_EQ(stat(scrape, "switchboard_publish_durable_seconds", {}, "count"), 3);
  EXPECT_EQ(stat(scrape, "switchboard_rooms", {}), 1);

  auto table = run_command({"stats", "--connect", address});
  ASSERT_EQ(table.status, 0) << table.err;
  auto rows = lines(table.out);
  ASSERT_GE(rows.size(), 3u);
  EXPECT_EQ(rows[0], "node embedded (metrics at " + address + ")");
  EXPECT_EQ(rows[1].rfind("METRIC", 0), 0u);
  auto row = [&](const std::string& metric, const std::string& labels) -> std::vector<std::string> {
    for (const auto& r : rows) {
      std::istringstream words(r);
      std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
      if (!w.empty() && w[0] == metric && r.find(labels) != std::string::npos) return w;
    }
    return {};
  };
  EXPECT_EQ(row("switchboard_messages_received_total", "actor=chat type=publish").back(), "3") << table.out;
  EXPECT_EQ(row("switchboard_errors_total", "actor=chat code=no_such_room").back(), "1") << table.out;
  EXPECT_TRUE(row("switchboard_errors_total", "code=not_member").empty()) << "zero counters are left out";
  auto latency = row("switchboard_publish_ack_seconds", "-");
  ASSERT_GE(latency.size(), 4u) << table.out;
  EXPECT_EQ(latency[2] + " " + latency[3], "count 3,");
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, StatsSaysSoWhenNoNodeAnswers) {
  const std::string nobody = "127.0.0.1:" + std::to_string(switchboard::testing::free_port());
  auto r = run_command({"stats", "--connect", nobody});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cannot read metrics from " + nobody), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is the node running"), std::string::npos) << r.err;
  EXPECT_EQ(run_command({"stats", "--connect", "localhost:7420"}).status, 2);
  auto bad = run_command({"run", "--metrics", "everywhere"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("the metrics address must be HOST:PORT"), std::string::npos) << bad.err;
}

TEST(Cli, RoomManagesMembersAndRolesAndAnOwnersRightsDecideWhatAUserMayDo) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync"});
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  auto room = [&](std::vector<std::string> args) {
    std::vector<std::string> cmd = {"room"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    for (std::string extra : {"--keys", "--connect"}) {
      cmd.push_back(extra);
      cmd.push_back(extra == std::string("--keys") ? keys : at);
    }
    cmd.push_back("--room");
    cmd.push_back("staff");
    return run_command(cmd);
  };
  auto ok = [](const switchboard::testing::CommandResult& r, const std::string& out) {
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, out + "\n");
  };
  ok(room({"create", "--user", "ann", "--private"}), "created");
  ok(room({"add", "--user", "bob", "--role", "reader", "--as", "ann"}), "added");
  ok(room({"members"}), "ann\towner\nbob\treader");

  // bob is a reader: he may not post, nor manage.
  auto post = run_command({"post", "--keys", keys, "--connect", at, "--room", "staff", "--user", "bob", "hi"});
  EXPECT_EQ(post.status, 1);
  auto refused = room({"add", "--user", "eve", "--as", "bob"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("forbidden"), std::string::npos) << refused.err;
  // eve is not a member: for her, the private room is not there.
  auto hidden = room({"members", "--as", "eve"});
  EXPECT_EQ(hidden.status, 1);
  EXPECT_NE(hidden.err.find("no_such_room"), std::string::npos) << hidden.err;

  ok(room({"role", "--user", "bob", "--role", "owner", "--as", "ann"}), "changed");
  ok(room({"remove", "--user", "ann", "--as", "bob"}), "removed");
  ok(room({"members"}), "bob\towner");
  ok(room({"ban", "--user", "ann", "--as", "bob"}), "banned");
  ok(room({"ban", "--user", "ann"}), "banned already");
  auto banned = room({"add", "--user", "ann", "--as", "bob"});
  EXPECT_EQ(banned.status, 1);
  EXPECT_NE(banned.err.find("banned"), std::string::npos) << banned.err;
  ok(room({"unban", "--user", "ann", "--as", "bob"}), "unbanned");
  ok(room({"unban", "--user", "ann"}), "not banned");
  ok(room({"members"}), "bob\towner");
  EXPECT_EQ(room({"role", "--user", "bob", "--role", "boss"}).status, 1);
  EXPECT_EQ(room({"role", "--user", "bob"}).status, 2) << "a role change needs --role";
  EXPECT_EQ(room({"dance"}).status, 2);
  ok(room({"delete", "--as", "bob"}), "deleted");
  EXPECT_EQ(room({"members"}).status, 1);
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, UnreadListsAUsersRoomsWithWhatIsNewAndMarksThemRead) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  for (const char* text : {"one", "two", "three"})
    ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "ann", text}).status, 0);
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "bob", "here"}).status, 0);
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "dev", "--user", "ann", "build"}).status, 0);

  auto u = run_command({"unread", "--keys", keys, "--connect", at, "--user", "ann"});
  ASSERT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(lines(u.out), (std::vector<std::string>{"dev: 0 unread (read to 1 of 1); newest ann: build",
                                                    "ops: 1 unread (read to 3 of 4); newest bob: here"}));
  auto marked = run_command({"unread", "--keys", keys, "--connect", at, "--user", "ann", "--mark", "ops=4", "--json"});
  ASSERT_EQ(marked.status, 0) << marked.err;
  auto rows = lines(marked.out);
  ASSERT_EQ(rows.size(), 2u);
  auto ops = nlohmann::json::parse(rows[1]);
  EXPECT_EQ(ops["room"], "ops");
  EXPECT_EQ(ops["unread"], 0);
  EXPECT_EQ(ops["read_seq"], 4);
  EXPECT_EQ(ops["role"], "owner");
  EXPECT_EQ(ops["mentions"], 0);

  // bob mentions ann: counted for her until she reads it; a mention of a non-member fails.
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "bob", "--mention", "ann",
                         "ping @ann"})
                .status,
            0);
  auto outsider = run_command(
      {"post", "--keys", keys, "--connect", at, "--room", "ops", "--user", "bob", "--mention", "zed", "hi"});
  EXPECT_EQ(outsider.status, 1);
  EXPECT_NE(outsider.err.find("'zed' is not a member"), std::string::npos) << outsider.err;
  u = run_command({"unread", "--keys", keys, "--connect", at, "--user", "ann"});
  ASSERT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(lines(u.out)[0], "ops: 1 unread, 1 mention (read to 4 of 5); newest bob: ping @ann");

  auto past = run_command({"unread", "--keys", keys, "--connect", at, "--user", "ann", "--mark", "ops=9"});
  EXPECT_EQ(past.status, 1);
  EXPECT_NE(past.err.find("bad_field"), std::string::npos) << past.err;
  auto malformed = run_command({"unread", "--keys", keys, "--connect", at, "--user", "ann", "--mark", "ops"});
  EXPECT_EQ(malformed.status, 1);
  EXPECT_NE(malformed.err.find("ROOM=SEQ"), std::string::npos) << malformed.err;
  EXPECT_EQ(node.stop(), 0);
}

TEST(Cli, ExportPrintsARoomAsJsonLinesFromASeqOn) {
  TempDir data;
  NodeProcess node(data.path(), kQuiet);
  const std::string at = node.client_endpoint(), keys = node.keys_dir();
  ASSERT_EQ(run_command({"post", "--keys", keys, "--connect", at, "--room", "log", "--user", "bob", "hi"}).status, 0);
  for (const char* text : {"first \"quoted\"", "sécond\nline", "third"}) {
    auto r = run_command({"post", "--keys", keys, "--connect", at, "--room", "log", "--user", "ann", "--cmid",
                          std::string("c-") + text[0], "--mention", "bob", text});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  auto all = run_command({"export", "--keys", keys, "--connect", at, "--room", "log"});
  ASSERT_EQ(all.status, 0) << all.err;
  auto rows = lines(all.out);
  ASSERT_EQ(rows.size(), 4u);
  const std::vector<std::string> bodies = {"hi", "first \"quoted\"", "sécond\nline", "third"};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto j = nlohmann::json::parse(rows[i]);
    EXPECT_EQ(j["seq"], i + 1);
    EXPECT_EQ(j["body"], bodies[i]);
    EXPECT_TRUE(j["ts"].is_number_unsigned());
    EXPECT_EQ(j["user"], i == 0 ? "bob" : "ann");
    if (i > 0) {
      EXPECT_EQ(j["cmid"], std::string("c-") + bodies[i][0]);
      EXPECT_EQ(j["mentions"], nlohmann::json::array({"bob"}));
    } else {
      EXPECT_FALSE(j.contains("mentions"));
    }
  }
  EXPECT_NE(all.err.find("4 messages of 'log', seq 1 to 4"), std::string::npos) << all.err;

  auto later = run_command({"export", "--keys", keys, "--connect", at, "--room", "log", "--after", "2"});
  ASSERT_EQ(later.status, 0) << later.err;
  auto later_rows = lines(later.out);
  ASSERT_EQ(later_rows.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(later_rows[0])["seq"], 3);

  auto none = run_command({"export", "--keys", keys, "--connect", at, "--room", "nowhere"});
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("no_such_room"), std::string::npos) << none.err;
  EXPECT_TRUE(none.out.empty());
}
