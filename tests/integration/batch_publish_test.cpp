// publish_batch (docs/PROTOCOL.md section 4.7), with real node processes: the client
// gathers pipelined publishes into batch frames and every message keeps its own seq,
// cmid and ack; a batch retried after a kill -9 stores nothing twice; batches are
// forwarded to a room's owner and replicated before they are acknowledged.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <set>

#include <nlohmann/json.hpp>

#include "client_helpers.hpp"
#include "cluster_process.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using switchboard::testing::Cluster;
using switchboard::testing::ClusterSettings;
using switchboard::testing::NodeProcess;
using switchboard::testing::run_command;
using switchboard::testing::TempDir;
using switchboard::testing::while_unavailable;
using switchboard::testing::whole_history;

namespace {


/// Publishes `n` messages (cmids TAG-i) with publish_async; returns cmid -> acked seq.
std::map<std::string, std::uint64_t> publish_pipelined(client::Client& c, const std::string& room, int n,
                                                      const std::string& tag) {
  std::map<std::string, std::uint64_t> acked;
  for (int i = 0; i < n; ++i) {
    const std::string cmid = tag + "-" + std::to_string(i);
    c.publish_async(room, "ann", "message " + cmid, [&acked, cmid](const Result<transport::PublishOk>& r) {
      EXPECT_TRUE(r) << cmid << ": " << r.error().message;
      if (r) acked[cmid] = r->seq;
    }, cmid);
  }
  EXPECT_TRUE(c.wait_all());
  return acked;
}

/// The history's seqs are 1..n, and each message's seq is the one its publisher was acked with.
void expect_history_matches(client::Client& c, const std::string& room, const std::map<std::string, std::uint64_t>& acked) {
  auto messages = whole_history(c, room);
  ASSERT_EQ(messages.size(), acked.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(messages[i].seq, i + 1);
    auto it = acked.find(messages[i].client_msg_id);
    ASSERT_NE(it, acked.end()) << messages[i].client_msg_id << " was stored but never acked";
    EXPECT_EQ(it->second, messages[i].seq) << messages[i].client_msg_id;
    EXPECT_EQ(messages[i].body, "message " + messages[i].client_msg_id);
  }
}

/// The node's count of requests received for `op` (its metrics endpoint).
double received(const NodeProcess& node, const std::string& op) {
  const auto at = node.output().find(" metrics=");
  if (at == std::string::npos) return -1;
  const std::string url = node.output().substr(at + 9, node.output().find_first_of(" \n", at + 9) - at - 9);
  auto stats = run_command({"stats", "--connect", url, "--json"});
  auto scrape = nlohmann::json::parse(stats.out);
  for (const auto& metric : scrape["metrics"])
    if (metric["name"] == "switchboard_messages_received_total")
      for (const auto& sample : metric["samples"])
        if (sample["labels"]["actor"] == "chat" && sample["labels"]["type"] == op) return sample["value"];
  return -1;
}

}  // namespace

TEST(BatchPublish, PipelinedPublishesGoOutInBatchFramesAndEachIsAckedWithItsOwnSeq) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "off", "--metrics", "127.0.0.1:*"});
  client::Client c(options_for(node));
  ASSERT_TRUE(c.create_room("busy", "ann"));
  auto acked = publish_pipelined(c, "busy", 5000, "p");
  ASSERT_EQ(acked.size(), 5000u);
  std::set<std::uint64_t> seqs;
  for (const auto& [cmid, seq] : acked) seqs.insert(seq);
  EXPECT_EQ(seqs.size(), 5000u) << "no two messages share a seq";
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), 5000u);
  expect_history_matches(c, "busy", acked);
  // They went out gathered: far fewer frames than messages.
  const double batches = received(node, "publish_batch"), singles = received(node, "publish");
  EXPECT_GT(batches, 0) << "no publish_batch frame reached the node";
  EXPECT_LT(batches + singles, 2500) << batches << " batch frames and " << singles << " single ones for 5000 messages";
  // A synchronous publish after them takes the next seq.
  auto ack = c.publish("busy", "ann", "last", "last");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->seq, 5001u);
  EXPECT_EQ(node.stop(), 0);
}

TEST(BatchPublish, ABatchRetriedAfterAKillNineStoresNothingTwice) {
  TempDir data;
  const std::vector<std::string> args = {"--durability", "sync", "--bridge", "off", "--metrics", "off"};
  auto node = std::make_unique<NodeProcess>(data.path(), args);
  transport::PublishBatch batch{"r", "ann", {}};
  for (int i = 0; i < 200; ++i) batch.items.push_back({"k" + std::to_string(i), "body " + std::to_string(i)});
  auto send = [&](client::Client& c) {
    // The library's own frame for it: one publish_batch of 200 items.
    std::vector<Result<transport::PublishOk>> results;
    for (const auto& item : batch.items)
      c.publish_async(batch.room, batch.user, item.body,
                      [&results](const Result<transport::PublishOk>& r) { results.push_back(r); }, item.client_msg_id);
    EXPECT_TRUE(c.wait_all());
    return results;
  };
  std::vector<std::uint64_t> first_seqs;
  {
    client::Client c(options_for(*node));
    ASSERT_TRUE(c.create_room("r", "ann"));
    for (const auto& r : send(c)) {
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_FALSE(r->duplicate);
      first_seqs.push_back(r->seq);
    }
  }
  node->kill_hard();  // acked with sync: on disk, whatever happens to the process
  node = std::make_unique<NodeProcess>(data.path(), args);
  client::Client c(options_for(*node));
  std::vector<std::uint64_t> again_seqs;
  for (const auto& r : send(c)) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->duplicate) << "a retry of a stored message";
    again_seqs.push_back(r->seq);
  }
  EXPECT_EQ(again_seqs, first_seqs);
  EXPECT_EQ(whole_history(c, "r").size(), 200u) << "stored once";
  EXPECT_EQ(node->stop(), 0);
}

TEST(BatchPublish, BatchesAreForwardedToTheOwnerAndReplicatedBeforeTheirAck) {
  Cluster cluster(ClusterSettings{.shard_lines = {{"s1", "replicas = [\"b\"]\n"}}});
  cluster.start_all();
  const std::string room = cluster.room_owned_by("a", "replicated");
  // Published through node c, which owns nothing of it: each frame is forwarded to a.
  client::Client on_c(cluster.client_of("c"));
  ASSERT_TRUE(while_unavailable([&] { return on_c.create_room(room, "ann"); }));
  auto acked = publish_pipelined(on_c, room, 3000, "f");
  ASSERT_EQ(acked.size(), 3000u);
  // With ack = replicated, every acked message is on b: it serves them all with a down.
  cluster.kill("a");
  client::Client on_b(cluster.client_of("b"));
  expect_history_matches(on_b, room, acked);
}

TEST(BatchPublish, ANodeThatDoesNotKnowPublishBatchIsSentSinglePublishesAndEveryOneIsAcked) {
  // A node from before publish_batch, played by a ROUTER: unknown_op for publish_batch,
  // and an ack with the next seq for each publish.
  zmq::context_t context;
  zmq::socket_t router(context, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0}, singles{0};
  std::thread old_node([&] {
    std::uint64_t seq = 0;
    while (!stop) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) == 0) continue;
      zmq::message_t who, frame;
      (void)router.recv(who);
      (void)router.recv(frame);
      auto request = transport::decode_request(frame.to_string_view(), transport::Limits{});
      transport::Reply reply{request.id, transport::ErrorReply{errc::unknown_op, "unknown op 'publish_batch'"}};
      if (request.body && std::holds_alternative<transport::PublishBatch>(*request.body)) {
        ++batches;
      } else if (auto* p = request.body ? std::get_if<transport::Publish>(&*request.body) : nullptr) {
        ++singles;
        reply.body = transport::PublishOk{p->room, ++seq, 1'700'000'000'000 + seq, false};
      }
      router.send(who, zmq::send_flags::sndmore);
      router.send(zmq::buffer(transport::encode_reply(reply)), zmq::send_flags::none);
    }
  });
  client::ClientOptions o;
  o.endpoint = endpoint;
  client::Client c(o);
  std::vector<std::uint64_t> seqs(300, 0);
  for (std::size_t i = 0; i < seqs.size(); ++i)
    c.publish_async("r", "ann", "m" + std::to_string(i), [&seqs, i](const Result<transport::PublishOk>& r) {
      EXPECT_TRUE(r) << r.error().message;
      if (r) seqs[i] = r->seq;
    });
  EXPECT_TRUE(c.wait_all(std::chrono::seconds(30)));
  stop = true;
  old_node.join();
  std::set<std::uint64_t> distinct(seqs.begin(), seqs.end());
  EXPECT_EQ(distinct.size(), seqs.size()) << "every message acked, each once";
  EXPECT_EQ(distinct.count(0), 0u);
  EXPECT_GE(batches.load(), 1) << "it tried a batch first";
  EXPECT_EQ(singles.load(), 300) << "then sent every message alone";
}
