// Topology files: the examples are valid, and each kind of mistake is refused with
// its line, column and a message naming what is wrong.
#include <gtest/gtest.h>

#include "switchboard/router/topology.hpp"

using namespace switchboard::router;

namespace {

/// The single error of `text`, or a failure if there are none or several.
ConfigError only_error(const std::string& text) {
  auto r = parse_topology(text, "topo.toml");
  EXPECT_EQ(r.errors.size(), 1u) << [&] {
    std::string all;
    for (auto& e : r.errors) all += e.to_string() + "\n";
    return all;
  }();
  return r.errors.empty() ? ConfigError{} : r.errors.front();
}

const char* kNode = "[nodes.a]\nclient = \"tcp://127.0.0.1:7400\"\n";

}  // namespace

TEST(Topology, TheExamplesAreValid) {
  for (const char* file : {"single-node.toml", "three-nodes.toml"}) {
    auto r = load_topology(std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/" + file);
    for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  }
  auto three = load_topology(std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/three-nodes.toml");
  ASSERT_EQ(three.topology.nodes.size(), 3u);
  EXPECT_EQ(three.topology.nodes.at("b").publish, "tcp://127.0.0.1:7511") << "publish defaults to client port + 1";
  EXPECT_EQ(three.topology.nodes.at("c").presence_pub, "tcp://127.0.0.1:7523");
  ASSERT_EQ(three.topology.shards.size(), 3u);
  EXPECT_EQ(three.topology.shards[2].owner, "c");
  ASSERT_EQ(three.topology.services.count("bot"), 1u) << "examples/bot runs against this file";
  EXPECT_TRUE(three.topology.services.at("bot").publish_hook);
  EXPECT_TRUE(three.topology.services.at("bot").fail_open);
  EXPECT_EQ(three.topology.nodes.at("c").metrics, "127.0.0.1:7526");
}

TEST(Topology, MetricsIsAnAddressOrOff) {
  auto r = parse_topology(std::string(kNode) + "metrics = \"[::1]:*\"\n[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\n"
                                               "metrics = \"off\"\n[[shards]]\nname = \"s\"\nowner = \"a\"\n",
                          "topo.toml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  EXPECT_EQ(r.topology.nodes.at("a").metrics, "[::1]:*");
  EXPECT_EQ(r.topology.nodes.at("b").metrics, "off");
}

TEST(Topology, ReadsTheNodesKeyFiles) {
  auto r = parse_topology(std::string(kNode) + "bridge = \"127.0.0.1:7410\"\nbridge_cert = \"tls/b.crt\"\n"
                                               "bridge_key = \"tls/b.key\"\nstore_key = \"keys/store.key\"\n",
                          "topo.toml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  const auto& n = r.topology.nodes.at("a");
  EXPECT_EQ(n.bridge_cert, "tls/b.crt");
  EXPECT_EQ(n.bridge_key, "tls/b.key");
  EXPECT_EQ(n.store_key, "keys/store.key");
}

TEST(Topology, SingleNodeFileEqualsTheEmbeddedDefault) {
  auto r = load_topology(std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/single-node.toml");
  ASSERT_TRUE(r.ok());
  const auto& n = r.topology.nodes.at("embedded");
  EXPECT_EQ(n.client, "tcp://127.0.0.1:7400");
  EXPECT_EQ(n.metrics, "127.0.0.1:7420");
  EXPECT_EQ(n.publish, "tcp://127.0.0.1:7401");
  EXPECT_EQ(n.presence, "tcp://127.0.0.1:7402");
  EXPECT_EQ(n.presence_pub, "tcp://127.0.0.1:7403");
  EXPECT_EQ(n.data, "data");
  EXPECT_TRUE(n.sync);
  switchboard::transport::Limits defaults;
  EXPECT_EQ(r.topology.limits.max_body, defaults.max_body);
  EXPECT_EQ(r.topology.limits.dedup_window, defaults.dedup_window);
}

TEST(Topology, ReadsLimitsAndPresence) {
  auto r = parse_topology(std::string(kNode) + "[limits]\nmax_body = 1000\ndedup_window_ms = 5000\n"
                                               "[presence]\nheartbeat_ms = 100\nsession_ttl_ms = 300\n",
                          "t");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.topology.limits.max_body, 1000u);
  EXPECT_EQ(r.topology.limits.dedup_window.count(), 5000);
  EXPECT_EQ(r.topology.heartbeat.count(), 100);
  EXPECT_EQ(r.topology.session_ttl.count(), 300);
  EXPECT_EQ(r.topology.shards.at(0).owner, "a") << "a lone node owns the default shard";
  EXPECT_EQ(r.topology.peers.election_wait, 2u);
  EXPECT_EQ(r.topology.peers.election_timeout, 2u);
  auto cluster = parse_topology(std::string(kNode) + "[cluster]\nheartbeat_ms = 250\nmisses = 2\n"
                                                     "election_wait = 0\nelection_timeout = 4\n",
                                "t");
  ASSERT_TRUE(cluster.ok()) << cluster.errors.front().to_string();
  EXPECT_EQ(cluster.topology.peers.heartbeat.count(), 250);
  EXPECT_EQ(cluster.topology.peers.misses, 2u);
  EXPECT_EQ(cluster.topology.peers.election_wait, 0u);
  EXPECT_EQ(cluster.topology.peers.election_timeout, 4u);
}

struct Bad {
  const char* name;
  std::string text;
  std::uint32_t line, column;
  const char* message_part;
};

TEST(Topology, MistakesAreRefusedWithLineAndMessage) {
  const std::vector<Bad> cases = {
      {"TOML syntax", std::string(kNode) + "publish = \"tcp://x:1\n", 3, 21, "string"},
      {"unknown top-level key", "colour = \"blue\"\n" + std::string(kNode), 1, 1, "unknown key 'colour' in the file"},
      {"unknown node key", std::string(kNode) + "listen = \"tcp://127.0.0.1:1\"\n", 3, 1,
       "unknown key 'listen' in [nodes.a]"},
      {"wrong type", std::string(kNode) + "max_store_mb = \"lots\"\n", 3, 16, "must be an integer"},
      {"bad durability", std::string(kNode) + "durability = \"sometimes\"\n", 3, 14, "\"sync\" or \"nosync\""},
      {"not an endpoint", "[nodes.a]\nclient = \"127.0.0.1:7400\"\n", 2, 10, "is not an endpoint"},
      {"node without client", "[nodes.a]\ndata = \"d\"\n", 1, 1, "has no 'client' endpoint"},
      {"endpoint used twice",
       std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\npublish = \"tcp://127.0.0.1:7400\"\n"
                            "[[shards]]\nname = \"s\"\nowner = \"a\"\n",
       5, 11, "already used by nodes.a.client"},
      {"two nodes on one data directory",
       std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\ndata = \"./data/a\"\n"
                            "[[shards]]\nname = \"s\"\nowner = \"a\"\n",
       5, 8, "'data' of [nodes.b] is \"./data/a\", the data directory of [nodes.a] too"},
      {"default endpoint clashes",
       std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:7395\"\n[[shards]]\nname = \"s\"\nowner = \"a\"\n",
       3, 1, "(nodes.b.presence_peer, by default) is already used by nodes.a.client"},
      {"node named twice", std::string(kNode) + "[nodes.a]\nclient = \"tcp://127.0.0.1:9000\"\n", 3, 1, "nodes.a"},
      {"shard without owner", std::string(kNode) + "[[shards]]\nname = \"s1\"\n", 3, 1, "shard 's1' has no owner"},
      {"shard of an unknown node", std::string(kNode) + "[[shards]]\nname = \"s1\"\nowner = \"z\"\n", 5, 9,
       "owned by 'z', which is not a node"},
      {"shard named twice",
       std::string(kNode) + "[[shards]]\nname = \"s\"\nowner = \"a\"\n[[shards]]\nname = \"s\"\nowner = \"a\"\n", 7, 8,
       "named twice"},
      {"several nodes, no shards",
       std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\n", 1, 1, "no [[shards]]"},
      {"limit out of range", std::string(kNode) + "[limits]\nmax_depth = 1000\n", 4, 13, "between 2 and 64"},
      {"ttl not above heartbeat", std::string(kNode) + "[presence]\nheartbeat_ms = 500\nsession_ttl_ms = 500\n", 3, 1,
       "must be longer than heartbeat_ms"},
      {"no nodes", "[limits]\nmax_body = 10\n", 1, 1, "at least one node"},
      // Found by fuzz.topology: an empty [nodes] table was "ok: 0 node(s)".
      {"an empty [nodes] table", "# nothing here\n[nodes]\n", 2, 1, "[nodes] has no [nodes.NAME] table"},
      {"no misses allowed", std::string(kNode) + "[cluster]\nmisses = 0\n", 4, 10, "between 1 and 1000"},
      {"an election with no time to win", std::string(kNode) + "[cluster]\nelection_timeout = 0\n", 4, 20,
       "between 1 and 100"},
      {"a picked port where other nodes must connect",
       std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\npeer = \"tcp://127.0.0.1:*\"\n"
                            "[[shards]]\nname = \"s\"\nowner = \"a\"\n",
       5, 8, "'peer' of a node of several needs a fixed port"},
      {"a bridge address that is a host name", std::string(kNode) + "bridge = \"localhost:7410\"\n", 3, 10,
       "'bridge' in [nodes.a] must be \"HOST:PORT\""},
      {"a TLS certificate without its key", std::string(kNode) + "bridge = \"127.0.0.1:7410\"\nbridge_cert = \"b.crt\"\n",
       4, 15, "'bridge_cert' without 'bridge_key'"},
      {"a TLS key without its certificate", std::string(kNode) + "bridge = \"127.0.0.1:7410\"\nbridge_key = \"b.key\"\n",
       4, 14, "'bridge_key' without 'bridge_cert'"},
      {"TLS with no bridge and no API", std::string(kNode) + "bridge_cert = \"b.crt\"\nbridge_key = \"b.key\"\n", 3, 15,
       "no 'bridge' or 'api' address"},
      {"a metrics address that is a host name", std::string(kNode) + "metrics = \"localhost:7420\"\n", 3, 11,
       "'metrics' in [nodes.a] must be \"HOST:PORT\""},
      {"a metrics address used twice",
       std::string(kNode) + "metrics = \"127.0.0.1:7420\"\n[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\n"
                            "metrics = \"127.0.0.1:7420\"\n[[shards]]\nname = \"s\"\nowner = \"a\"\n",
       6, 11, "is already used by nodes.a.metrics"},
      {"a node name that is no name", "[nodes.\"a b\"]\nclient = \"tcp://127.0.0.1:7400\"\n", 1, 8,
       "node name 'a b'"},
  };
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ConfigError e = only_error(c.text);
    EXPECT_EQ(e.file, "topo.toml");
    EXPECT_EQ(e.line, c.line) << e.to_string();
    EXPECT_EQ(e.column, c.column) << e.to_string();
    EXPECT_NE(e.message.find(c.message_part), std::string::npos) << e.to_string();
    EXPECT_EQ(e.to_string().rfind("topo.toml:" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": ", 0), 0u);
  }
}

TEST(Topology, ServiceGrantsAreReadAndEachBadLineNamed) {
  const std::string key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";  // a Z85 public key (RFC 32's example)
  const std::string other = "b8loV^tt{Wvs9Fx!xTI3[e/x1n.ud0]>9Tj*BGPt";
  auto r = parse_topology(std::string(kNode) + "[security.grants.mod]\nkeys = [\"" + key +
                              "\"]\nusers = [\"bot\"]\nrooms = [\"ops-*\"]\nops = \"manage\"\n"
                              "[security.grants.reader]\nkeys = [\"" + other + "\"]\nops = \"read\"\n",
                          "topo.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const auto& mod = r.topology.security.grants.at("mod");
  EXPECT_EQ(mod.keys, std::vector<std::string>{key});
  EXPECT_EQ(mod.users, std::vector<std::string>{"bot"});
  EXPECT_EQ(mod.rooms, std::vector<std::string>{"ops-*"});
  EXPECT_EQ(mod.ops, switchboard::router::Grant::Ops::manage);
  const auto& reader = r.topology.security.grants.at("reader");
  EXPECT_EQ(reader.users, std::vector<std::string>{"*"}) << "anyone, by default";
  EXPECT_EQ(reader.ops, switchboard::router::Grant::Ops::read);

  struct Case { std::string text; unsigned line; std::string says; };
  const std::string g = std::string(kNode) + "[security.grants.g]\n";
  const std::vector<Case> cases = {
      {g + "keys = [\"short\"]\n", 4, "CURVE public key"},
      {g + "keys = []\n", 4, "must be a non-empty array"},
      {g + "keys = [\"" + key + "\"]\nops = \"admin\"\n", 5, "\"read\", \"write\" or \"manage\""},
      {g + "keys = [\"" + key + "\"]\nusers = [\"\"]\n", 5, "must be a name"},
      {g + "keys = [\"" + key + "\"]\nrooms = \"ops\"\n", 5, "must be a non-empty array"},
      {g + "keys = [\"" + key + "\"]\ncolour = 1\n", 5, "unknown key 'colour' in [security.grants.g]"},
      {std::string(kNode) + "[security]\nclient_keys = [\"" + key + "\"]\n[security.grants.g]\nkeys = [\"" + key +
           "\"]\n",
       6, "is also in client_keys"},
  };
  for (const auto& c : cases) {
    auto e = only_error(c.text);
    EXPECT_EQ(e.line, c.line) << c.text;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << e.message;
  }
}

TEST(Topology, ApiAddressAndApiKeysAreReadAndEachBadLineNamed) {
  const std::string full(40, 'f'), bot(32, 'b'), curve = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  auto r = parse_topology(std::string(kNode) + "api = \"127.0.0.1:7430\"\n[security]\napi_keys = [\"" + full +
                              "\"]\n[security.grants.bot]\napi_keys = [\"" + bot + "\"]\nrooms = [\"ops-*\"]\n",
                          "topo.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.topology.nodes.at("a").api, "127.0.0.1:7430");
  EXPECT_EQ(r.topology.security.api_keys, std::vector<std::string>{full});
  const auto& grant = r.topology.security.grants.at("bot");
  EXPECT_EQ(grant.api_keys, std::vector<std::string>{bot});
  EXPECT_TRUE(grant.keys.empty()) << "a grant of API keys alone needs no CURVE key";

  struct Case { std::string text; unsigned line; std::string says; };
  const std::string g = std::string(kNode) + "[security.grants.g]\n";
  const std::vector<Case> cases = {
      {std::string(kNode) + "api = \"localhost:80\"\n", 3, "'api' in [nodes.a] must be \"HOST:PORT\""},
      {std::string(kNode) + "api = \"127.0.0.1:7430\"\nmetrics = \"127.0.0.1:7430\"\n", 4, "already used by"},
      {g + "api_keys = [\"too-short\"]\n", 4, "32 to 256 printable ASCII characters"},
      {g + "api_keys = [\"" + std::string(31, 'x') + " \"]\n", 4, "without spaces"},
      {g + "api_keys = \"" + full + "\"\n", 4, "must be an array"},
      {g + "users = [\"bot\"]\n", 3, "needs 'keys' (the CURVE public keys it grants rights to), 'api_keys'"},
      {std::string(kNode) + "[security]\napi_keys = [\"" + full + "\"]\n[security.grants.g]\napi_keys = [\"" + full +
           "\"]\n",
       6, "is also in [security]"},
      {g + "keys = [\"" + curve + "\"]\napi_keys = [\"" + bot + "\"]\n[security.grants.h]\napi_keys = [\"" + bot + "\"]\n",
       7, "is also in [security.grants.g]"},
  };
  for (const auto& c : cases) {
    auto e = only_error(c.text);
    EXPECT_EQ(e.line, c.line) << c.text << "\n" << e.to_string();
    EXPECT_NE(e.message.find(c.says), std::string::npos) << e.message;
  }
}

TEST(Topology, EveryErrorOfAFileIsReportedNotJustTheFirst) {
  auto r = parse_topology("[nodes.a]\nclient = \"nope\"\ndurability = \"x\"\nextra = 1\n", "t");
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST(Topology, SecurityTableAndKeysAreReadAndBadKeysNamed) {
  const std::string key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";  // a Z85 public key (RFC 32's example)
  auto r = parse_topology(std::string(kNode) + "curve_secret_file = \"/etc/sb/a.key\"\ncurve_public = \"" + key +
                              "\"\n[security]\ncurve = true\nclient_keys = [\"" + key + "\"]\nclient_keys_dir = \"keys\"\n"
                              "local_client = false\n",
                          "topo.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_TRUE(r.topology.security.curve);
  EXPECT_FALSE(r.topology.security.local_client);
  EXPECT_EQ(r.topology.security.client_keys, std::vector<std::string>{key});
  EXPECT_EQ(r.topology.security.client_keys_dir, "keys");
  EXPECT_EQ(r.topology.nodes.at("a").curve_secret_file, "/etc/sb/a.key");
  EXPECT_EQ(r.topology.nodes.at("a").curve_public, key);

  auto defaults = parse_topology(kNode, "topo.toml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.topology.security.curve) << "CURVE is on unless the file turns it off";
  EXPECT_TRUE(defaults.topology.nodes.at("a").curve_secret_file.empty()) << "DATA/keys/node.key";

  auto e = only_error(std::string(kNode) + "[security]\nclient_keys = [\"" + key + "\", \"short\"]\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_NE(e.message.find("CURVE public key"), std::string::npos) << e.message;
  e = only_error(std::string(kNode) + "curve_public = \"" + key.substr(0, 39) + "\\\"\"\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.message.find("'curve_public' in [nodes.a]"), std::string::npos) << e.message;
  e = only_error(std::string(kNode) + "[security]\ncurve = \"no\"\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_NE(e.message.find("'curve' in [security] must be true or false"), std::string::npos) << e.message;
  e = only_error(std::string(kNode) + "[security]\ncurv = false\n");
  EXPECT_NE(e.message.find("unknown key 'curv' in [security]"), std::string::npos) << e.message;
  e = only_error(std::string(kNode) + "[services.bot]\nendpoint = \"tcp://127.0.0.1:7600\"\ncurve_public = 7\n");
  EXPECT_NE(e.message.find("'curve_public' in [services.bot]"), std::string::npos) << e.message;
}

TEST(Topology, ShardReplicasAndTheirAckAreReadAndEachBadLineNamed) {
  const std::string nodes = std::string(kNode) + "[nodes.b]\nclient = \"tcp://127.0.0.1:9000\"\n"
                                                 "[nodes.c]\nclient = \"tcp://127.0.0.1:9100\"\n";
  auto r = parse_topology(nodes + "[[shards]]\nname = \"s1\"\nowner = \"a\"\nreplicas = [\"b\", \"c\"]\n"
                                  "[[shards]]\nname = \"s2\"\nowner = \"b\"\nreplicas = [\"c\"]\nack = \"local\"\n"
                                  "[[shards]]\nname = \"s3\"\nowner = \"c\"\nreplicas = [\"a\", \"b\"]\nack_replicas = 2\n",
                          "topo.toml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_EQ(r.topology.shards.size(), 3u);
  const auto& s1 = r.topology.shards[0];
  EXPECT_EQ(s1.replicas, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(s1.ack, ShardConfig::Ack::replicated) << "replicated is the default for a shard with replicas";
  EXPECT_EQ(s1.ack_replicas, 1u) << "the primary and one replica by default";
  EXPECT_EQ(r.topology.shards[1].ack, ShardConfig::Ack::local);
  EXPECT_EQ(r.topology.shards[1].ack_replicas, 0u);
  EXPECT_EQ(r.topology.shards[2].ack_replicas, 2u);

  const std::string shard = nodes + "[[shards]]\nname = \"s1\"\nowner = \"a\"\n";
  struct Case {
    std::string lines;
    std::uint32_t line;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"replicas = [\"z\"]\n", 10, "replica 'z', which is not a node of this file"},
      {"replicas = [\"a\"]\n", 10, "has its owner 'a' as a replica"},
      {"replicas = [\"b\", \"b\"]\n", 10, "names replica 'b' twice"},
      {"replicas = \"b\"\n", 10, "must be an array of node names"},
      {"ack = \"replicated\"\n", 10, "no 'replicas' to acknowledge with"},
      {"replicas = [\"b\"]\nack = \"quorum\"\n", 11, "must be \"replicated\" or \"local\"; got \"quorum\""},
      {"replicas = [\"b\"]\nack_replicas = 2\n", 11, "asks for 2 replicas' acks but has 1"},
      {"replicas = [\"b\"]\nack = \"local\"\nack_replicas = 1\n", 12, "does not have ack = \"replicated\""},
  };
  for (const auto& c : cases) {
    auto e = only_error(shard + c.lines);
    EXPECT_EQ(e.line, c.line) << c.lines;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.lines << " -> " << e.message;
  }
}

TEST(Topology, WebhooksAreReadAndEachBadLineNamed) {
  const std::string secret(40, 's');
  auto r = parse_topology(std::string(kNode) + "[webhooks.crm]\nurl = \"https://hooks.example.com:8443/in?x=1\"\n"
                                                "secret = \"" + secret + "\"\nrooms = [\"support-*\"]\nusers = [\"ann\"]\n"
                                                "connections = 2\nmax_batch = 50\ntimeout_ms = 700\n"
                                                "events = [\"message\"]\n",
                          "topo.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const auto& w = r.topology.webhooks.at("crm");
  EXPECT_EQ(w.url, "https://hooks.example.com:8443/in?x=1");
  EXPECT_EQ(w.secret, secret);
  EXPECT_EQ(w.rooms, std::vector<std::string>{"support-*"});
  EXPECT_EQ(w.users, std::vector<std::string>{"ann"});
  EXPECT_EQ(w.connections, 2u);
  EXPECT_EQ(w.max_batch, 50u);
  EXPECT_EQ(w.timeout.count(), 700);
  auto kinds = parse_topology(std::string(kNode) + "[webhooks.all]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"" +
                                  secret + "\"\nevents = [\"presence\", \"message\", \"membership\", \"room\"]\n",
                              "topo.toml");
  ASSERT_TRUE(kinds.ok()) << kinds.errors.front().to_string();
  EXPECT_EQ(kinds.topology.webhooks.at("all").events,
            (std::vector<std::string>{"presence", "message", "membership", "room"}));

  struct Case { std::string text; unsigned line; std::string says; };
  const std::string h = std::string(kNode) + "[webhooks.h]\nsecret = \"" + secret + "\"\n";
  const std::vector<Case> cases = {
      {h + "url = \"ftp://example.com/\"\n", 5, "must start with http:// or https://"},
      {h + "url = \"http:///x\"\n", 5, "no host"},
      {h + "url = \"http://example.com:0/\"\n", 5, "port must be 1 to 65535"},
      {h + "url = \"http://user:pw@example.com/\"\n", 5, "user info"},
      {h, 3, "has no 'url'"},
      {std::string(kNode) + "[webhooks.h]\nurl = \"http://127.0.0.1:9/\"\n", 3, "has no 'secret'"},
      {std::string(kNode) + "[webhooks.h]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"short\"\n", 5,
       "32 to 256 printable ASCII"},
      {h + "url = \"http://127.0.0.1:9/\"\nevents = [\"typing\"]\n", 6,
       "must be \"message\", \"membership\", \"room\", \"presence\" or \"notification\""},
      {h + "url = \"http://127.0.0.1:9/\"\nevents = [\"message\", \"notification\"]\n", 6,
       "names \"notification\" with other kinds"},
      {h + "url = \"http://127.0.0.1:9/\"\nevents = [\"room\", \"room\"]\n", 6, "names \"room\" twice"},
      {h + "url = \"http://127.0.0.1:9/\"\nwindow_ms = 10\n", 6, "is for a webhook of notifications"},
      {h + "url = \"http://127.0.0.1:9/\"\nevents = [\"notification\"]\nmax_batch = 5\n", 7, "is for a webhook of events"},
      {h + "url = \"http://127.0.0.1:9/\"\nconnections = 0\n", 6, "between 1 and 64"},
      {h + "url = \"http://127.0.0.1:9/\"\nretries = 3\n", 6, "unknown key 'retries' in [webhooks.h]"},
      {std::string(kNode) + "[webhooks.\"a b\"]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"" + secret + "\"\n", 3,
       "webhook name 'a b'"},
  };
  for (const auto& c : cases) {
    auto e = only_error(c.text);
    EXPECT_EQ(e.line, c.line) << c.text << "\n" << e.to_string();
    EXPECT_NE(e.message.find(c.says), std::string::npos) << e.message;
  }
}
