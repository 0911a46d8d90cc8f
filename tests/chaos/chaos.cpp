// switchboard_chaos: publishers and subscribers work a real node, or the three nodes of
// examples/topologies/three-nodes.toml, while a driver inflicts faults at random
// moments: kill -9 and restart a node, freeze one (SIGSTOP, then SIGCONT), and with
// three nodes cut, hold or slow the link between two of them (a proxy on loopback
// stands in every link: tests/support/link_proxy.hpp). Then a checker reads every
// room's whole history and every subscriber's log and verifies what Switchboard
// promises:
//   - every acknowledged message is stored, exactly once, under the seq it was acked
//     with, and every message a publisher sent was in the end acknowledged (publishers
//     retry with the same client message id until it is);
//   - each room's seqs are gapless from 1;
//   - reactions, thread replies and deletes (one in three of a publisher's messages
//     gets one): each message shows the state its room's entries make (a delete
//     acknowledged is a tombstone, reaction counts and thread summaries exact);
//   - nothing appears that no publisher sent;
//   - every subscriber's log of each room (one subscriber per node, following every
//     room) is the room's history, in order, once each (the client repairs gaps);
//   - read markers (docs/PROTOCOL.md 4.9.1): readers mark rooms read meanwhile, and a
//     sampler asks every user's room summaries throughout. No summary shows a marker
//     behind one acknowledged before it was asked (a mark_read's reply, the user's own
//     message), or behind one an earlier summary showed, or past the room's last seq;
//     unread is last seq - read seq; at the end every node says so of every user and
//     room, with the last seq the history's. (A reply that names a node missing may
//     hold a replica's older copy of that node's rooms: counted apart, not a failure.)
// It prints its figures and exits 0 when every check holds, 1 otherwise.
// docs/RELIABILITY.md has the commands (ctest runs short modes) and measured figures.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "cluster_process.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

struct Settings {
  int faults = 10;
  bool pause = false;  ///< SIGSTOP/SIGCONT instead of kill -9 (the same as --kinds freeze)
  std::vector<std::string> kinds;  ///< faults to draw from (kill, freeze, cut, hold, slow)
  int nodes = 1;                   ///< 1, or 3: examples/topologies/three-nodes.toml
  int rooms = 4;
  int publishers = 3;
  /// Of the publishers, how many pipeline with publish_async: the client gathers their
  /// messages into publish_batch frames.
  int batch_publishers = 1;
  unsigned seed = 0;
  int min_gap_ms = 150, max_gap_ms = 600;  ///< time between faults
  int pause_ms = 1500;                      ///< how long a freeze or a broken link lasts
  /// Soak: run this long (faults, if any, spread over it), with mixed load: history
  /// readers, presence sessions, and clients that reconnect. 0: until the faults are done.
  int soak_s = 0;
  /// Soak: the node's anonymous memory must stay under this. What grows is the window
  /// of recent publishes kept to spot retries (dedup_max_entries, 1,000,000 by default,
  /// about 280 bytes each: docs/RELIABILITY.md).
  int max_rss_mb = 512;
  bool replicated = false;  ///< three nodes: every shard has the two other nodes as replicas
  /// Users who mark rooms read during the run, each on a client of its own (on node
  /// i % nodes); -1: one per node.
  int readers = -1;
};

client::ClientOptions retrying(client::ClientOptions o) {
  o.attempt_timeout = client::Millis(400);
  o.max_attempts = 3;
  return o;
}

/// What the faults are done to: one node, or the three nodes of a topology.
class Target {
 public:
  virtual ~Target() = default;
  virtual std::size_t size() const = 0;  ///< nodes
  /// Node `i`'s name, as its peers' `missing` lists give it.
  virtual std::string name(std::size_t i) const = 0;
  /// A client of node `i` (its endpoint and keys stay the same across restarts).
  virtual client::ClientOptions options(std::size_t i) const = 0;
  /// Room `r`'s name (in a cluster, rooms go round the nodes that own them).
  virtual std::string room(int r) const { return "chaos-" + std::to_string(r); }
  /// Inflicts one fault of `kind` and ends it; a line saying what it did.
  virtual std::string inflict(const std::string& kind, std::mt19937& random, const Settings& s) = 0;
  virtual bool stop() = 0;  ///< true: every node stopped cleanly
  virtual std::vector<pid_t> pids() const = 0;
};

/// A process's resident anonymous memory (heap, stacks: not the store's mapped file),
/// in KiB; 0 if it cannot be read.
std::uint64_t rss_anon_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8));
  return 0;
}

/// One node, restarted on the same endpoints and data after each kill.
class OneNode final : public Target {
 public:
  explicit OneNode(const std::filesystem::path& data)
      : data_(data),
        listen_("tcp://127.0.0.1:" + std::to_string(testing::free_port())),
        extra_({"--publish", "tcp://127.0.0.1:" + std::to_string(testing::free_port()), "--bridge", "off",
                "--metrics", "off"}) {
    start();
  }
  std::size_t size() const override { return 1; }
  std::string name(std::size_t) const override { return "the node"; }
  client::ClientOptions options(std::size_t) const override {
    client::ClientOptions o;
    o.endpoint = node_->client_endpoint();
    auto keys = client::load_local_keys(node_->keys_dir());  // kept in the data directory across restarts
    if (keys) o.curve = *keys;
    return retrying(o);
  }
  std::string inflict(const std::string& kind, std::mt19937&, const Settings& s) override {
    if (kind == "kill") {
      node_->kill_hard();
      start();
    } else {  // freeze
      ::kill(node_->pid(), SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(s.pause_ms));  // the freeze itself
      ::kill(node_->pid(), SIGCONT);
    }
    return kind;
  }
  bool stop() override { return node_->stop() == 0; }
  std::vector<pid_t> pids() const override { return {node_->pid()}; }

 private:
  void start() { node_ = std::make_unique<NodeProcess>(data_, extra_, std::chrono::seconds(60), listen_); }

  std::filesystem::path data_;
  std::string listen_;
  std::vector<std::string> extra_;
  std::unique_ptr<NodeProcess> node_;
};

/// examples/topologies/three-nodes.toml, every link between two nodes through a proxy
/// that can slow, hold or cut it (tests/support/link_proxy.hpp).
class ThreeNodes final : public Target {
  static std::map<std::string, std::string> replicas(bool replicated) {
    if (!replicated) return {};
    return {{"s1", "replicas = [\"b\", \"c\"]\n"}, {"s2", "replicas = [\"a\", \"c\"]\n"},
            {"s3", "replicas = [\"a\", \"b\"]\n"}};
  }

 public:
  explicit ThreeNodes(bool replicated)
      : cluster_(testing::ClusterSettings{.proxied_links = true, .shard_lines = replicas(replicated)}),
        names_(cluster_.names()) {
    cluster_.start_all();
    for (const auto& n : names_) options_.push_back(retrying(cluster_.client_of(n)));
  }
  std::size_t size() const override { return names_.size(); }
  std::string name(std::size_t i) const override { return names_.at(i); }
  client::ClientOptions options(std::size_t i) const override { return options_.at(i % options_.size()); }
  std::string room(int r) const override {
    return cluster_.room_owned_by(names_[static_cast<std::size_t>(r) % names_.size()], "chaos" + std::to_string(r));
  }
  std::string inflict(const std::string& kind, std::mt19937& random, const Settings& s) override {
    std::uniform_int_distribution<std::size_t> pick(0, names_.size() - 1);
    const std::string& a = names_[pick(random)];
    const auto how_long = std::chrono::milliseconds(s.pause_ms);
    if (kind == "kill") {
      cluster_.kill(a);
      cluster_.start(a);
      return "kill " + a;
    }
    if (kind == "freeze") {
      ::kill(cluster_.node(a).pid(), SIGSTOP);
      std::this_thread::sleep_for(how_long);  // the freeze itself
      ::kill(cluster_.node(a).pid(), SIGCONT);
      return "freeze " + a;
    }
    std::string b = a;
    while (b == a) b = names_[pick(random)];
    using Mode = testing::LinkProxy::Mode;
    const Mode mode = kind == "cut" ? Mode::cut : kind == "hold" ? Mode::hold : Mode::slow;
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 200)(random));
    cluster_.set_link(a, b, mode, delay);
    std::this_thread::sleep_for(how_long);  // the broken link itself
    cluster_.set_link(a, b, Mode::pass);
    return kind + " " + a + "-" + b;
  }
  /// Replicated: waits until every replica has its primary's whole log (`switchboard
  /// shards` says lag 0 everywhere); the shards then, or nullopt if that does not
  /// happen within 60 s.
  std::optional<transport::ShardsOk> replicas_converge() {
    client::Client c(options_.front());
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    Result<transport::ShardsOk> list = make_error(errc::unavailable, "not asked");
    while (Clock::now() < deadline) {
      list = c.shards();
      bool converged = list && list->missing.empty();
      for (const auto& shard : converged ? list->shards : std::vector<transport::ShardInfo>{})
        for (const auto& r : shard.replicas) converged = converged && shard.primary_up && r.up && r.lsn == shard.lsn;
      if (converged) return std::move(*list);
    }
    // What the last look saw, for whoever reads why.
    if (!list) std::cout << "chaos: shards: " << list.error().message << "\n";
    for (const auto& shard : list ? list->shards : std::vector<transport::ShardInfo>{}) {
      std::cout << "chaos: " << shard.name << " primary " << shard.primary << (shard.primary_up ? "" : " (down)")
                << " term " << shard.term << " lsn " << shard.lsn << ";";
      for (const auto& r : shard.replicas) std::cout << " " << r.node << (r.up ? "" : " (down)") << " has " << r.lsn;
      std::cout << "\n";
    }
    return std::nullopt;
  }
  bool stop() override {
    bool ok = true;
    for (const auto& n : names_) ok = cluster_.node(n).stop() == 0 && ok;
    return ok;
  }
  std::vector<pid_t> pids() const override {
    std::vector<pid_t> out;
    for (const auto& n : names_) out.push_back(const_cast<testing::Cluster&>(cluster_).node(n).pid());
    return out;
  }

 private:
  testing::Cluster cluster_;
  std::vector<std::string> names_;
  std::vector<client::ClientOptions> options_;
};

struct Acked {
  std::string room;
  std::uint64_t seq = 0;
};

struct Figures {
  std::atomic<std::uint64_t> sent{0}, failed_attempts{0}, duplicates{0};
  std::atomic<std::uint64_t> changes{0};  ///< reactions, thread replies and deletes acknowledged
  std::atomic<std::uint64_t> refused{0};  ///< of them, refused by the rules (none expected)
  // Soak: the mixed load, and what went wrong in it.
  std::atomic<std::uint64_t> reconnects{0}, history_reads{0}, bad_pages{0}, presence_cycles{0}, presence_errors{0};
};

/// What acknowledged replies promise of read markers: a user's marker in a room is at
/// least the marker every mark_read reply gave them there, and at least their own
/// newest acknowledged message (publishing moves the sender's marker). Publishers and
/// readers record here as their replies come; whatever was recorded before a summary is
/// asked, the summary must show.
class ReadFloors {
 public:
  struct Floor {
    std::uint64_t marked = 0;     ///< the highest marker a mark_read reply gave
    std::uint64_t published = 0;  ///< the user's newest acknowledged message
    std::uint64_t at_least() const { return std::max(marked, published); }
  };
  void published(const std::string& user, const std::string& room, std::uint64_t seq) {
    std::lock_guard lock(mu_);
    auto& f = floors_[user][room];
    f.published = std::max(f.published, seq);
  }
  void marked(const std::string& user, const std::string& room, std::uint64_t seq) {
    std::lock_guard lock(mu_);
    auto& f = floors_[user][room];
    f.marked = std::max(f.marked, seq);
  }
  /// `user`'s floors as they stand now, by room.
  std::map<std::string, Floor> of(const std::string& user) const {
    std::lock_guard lock(mu_);
    auto it = floors_.find(user);
    return it == floors_.end() ? std::map<std::string, Floor>{} : it->second;
  }
  Floor of(const std::string& user, const std::string& room) const {
    auto all = of(user);
    auto it = all.find(room);
    return it == all.end() ? Floor{} : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, Floor>> floors_;  // user -> room ->
};

/// The read markers' checks and figures: each summary seen, during the run and at the
/// end, against the floors recorded before it was asked and the markers seen before.
class ReadCheck {
 public:
  explicit ReadCheck(Clock::time_point started) : started_(started) {}
  std::atomic<std::uint64_t> marks{0}, marks_acked{0}, marks_failed{0}, marks_past_end{0};
  std::atomic<std::uint64_t> samples{0}, samples_failed{0}, samples_incomplete{0}, summaries{0};
  std::atomic<std::uint64_t> behind_acked{0}, backwards{0}, unread_off{0}, past_last{0}, reply_behind{0};
  std::atomic<std::uint64_t> no_summary{0}, last_not_history{0}, nodes_disagree{0};
  /// Behind in a reply whose `missing` names a node: the room's primary did not answer
  /// and a replica's older copy stood in. Printed and counted, not a failure.
  std::atomic<std::uint64_t> stale_incomplete{0};

  /// A mark_read of `user` in `room` to `asked` answered with marker `got`; `floor` was
  /// recorded before it was sent.
  void mark_reply(const std::string& user, const std::string& room, std::uint64_t asked, std::uint64_t got,
                  const ReadFloors::Floor& floor) {
    if (got < asked || got < floor.at_least())
      say(reply_behind, "mark_read of " + user + " in " + room + " to " + std::to_string(asked) +
                            " answered marker " + std::to_string(got) + "; acknowledged before it: mark_read " +
                            std::to_string(floor.marked) + ", own message " + std::to_string(floor.published));
  }

  /// One summary of `user`'s, asked `where` (a node, a moment); `floor`: recorded before
  /// it was asked; `complete`: the reply named no node missing.
  void summary(const std::string& user, const transport::RoomSummary& s, const ReadFloors::Floor& floor,
               const std::string& where, bool complete) {
    ++summaries;
    const std::string what = user + " in " + s.room + " (" + where + "): read_seq " + std::to_string(s.read_seq) +
                             ", last_seq " + std::to_string(s.last_seq) + ", unread " + std::to_string(s.unread);
    if (s.unread != s.last_seq - s.read_seq) say(unread_off, what + ": unread is not last_seq - read_seq");
    if (s.read_seq > s.last_seq) say(past_last, what + ": the marker is past the last seq");
    const char* apart = complete ? "" : " (a node missing: not a failure)";
    if (s.read_seq < floor.at_least())
      say(complete ? behind_acked : stale_incomplete,
          what + ": acknowledged before it was asked: mark_read " + std::to_string(floor.marked) + ", own message " +
              std::to_string(floor.published) + apart);
    std::lock_guard lock(mu_);
    auto& seen = highest_[{user, s.room}];
    if (s.read_seq < seen.first)
      say(complete ? backwards : stale_incomplete,
          what + ": an earlier summary (" + seen.second + ") showed read_seq " + std::to_string(seen.first) + apart);
    else
      seen = {s.read_seq, where};
  }

  /// "asked of b at 12.34 s": where and when a summary was asked, for the failure lines.
  std::string where(const std::string& node) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, " at %.2f s", std::chrono::duration<double>(Clock::now() - started_).count());
    return "asked of " + node + buf;
  }

  std::uint64_t violations() const {
    return behind_acked + backwards + unread_off + past_last + reply_behind + no_summary + last_not_history +
           nodes_disagree;
  }

  /// Counts one of `kind` and prints the first few of each kind.
  void say(std::atomic<std::uint64_t>& kind, const std::string& line) {
    if (++kind > 5) return;
    std::lock_guard lock(print_mu_);
    std::cout << "chaos: read state: " << line << std::endl;
  }

 private:
  const Clock::time_point started_;
  std::mutex mu_, print_mu_;
  std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::string>> highest_;  // seen, where
};

/// Publishes messages until `stop`, each retried with its client message id until it
/// is acknowledged. Records every ack.
/// Soak: the client reconnects (a new connection) every 500 messages.
void publisher(int id, const std::vector<std::string>& rooms, const client::ClientOptions& options, bool reconnect,
               std::atomic<bool>& stop, std::mutex& mu, std::map<std::string, Acked>& acked, Figures& figures,
               ReadFloors& floors) {
  auto c = std::make_unique<client::Client>(options);
  for (std::size_t n = 0; !stop; ++n) {
    if (reconnect && n > 0 && n % 500 == 0) {
      c = std::make_unique<client::Client>(options);
      figures.reconnects++;
    }
    const std::string cmid = "p" + std::to_string(id) + "-" + std::to_string(n), user = "pub" + std::to_string(id);
    const std::string& room = rooms[(static_cast<std::size_t>(id) + n) % rooms.size()];
    // Sent until acknowledged: a timeout, or `unavailable` while the node or the room's
    // owner is down, is answered with the same cmid again (`unavailable` comes at once,
    // so a client backs off a little).
    auto until_acked = [&](const transport::Publish& p) {
      figures.sent++;
      for (;;) {
        auto ack = c->publish(p);
        if (ack) {
          if (ack->duplicate) figures.duplicates++;
          floors.published(user, room, ack->seq);
          std::lock_guard lock(mu);
          acked[p.client_msg_id] = {room, ack->seq};
          return ack->seq;
        }
        const errc code = ack.error().code;
        if (code == errc::no_change || code == errc::message_deleted || code == errc::no_such_message) {
          // Refused by the rules, and so stored nowhere: an earlier attempt stored would
          // have made this one a duplicate. The checks find it if it was.
          figures.sent--;
          figures.refused++;
          return std::uint64_t{0};
        }
        figures.failed_attempts++;
        if (code == errc::unavailable) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    };
    const std::uint64_t seq = until_acked(transport::Publish{room, user, cmid, "body of " + cmid});
    if (seq == 0) continue;
    // One message in three gets a change of its own (docs/PROTOCOL.md 4.7.2, 4.7.3): a
    // reaction, a reply in its thread, or a delete; the cmid's last letter says which.
    if (n % 3 != 0) continue;
    transport::Publish change{room, user, cmid, {}};
    switch ((n / 3) % 3) {
      case 0:
        change.client_msg_id += "r";
        change.kind = EntryKind::react;
        change.target = seq;
        change.key = "k";
        break;
      case 1:
        change.client_msg_id += "t";
        change.body = "reply of " + change.client_msg_id;
        change.thread = seq;
        break;
      default:
        change.client_msg_id += "d";
        change.kind = EntryKind::remove;
        change.target = seq;
    }
    if (until_acked(change) != 0) figures.changes++;
  }
}

/// The body a message of the chaos run has in history: a publish's "body of CMID", a
/// thread reply's "reply of CMID" (its cmid ends in "t"), none for a reaction ("r"), a
/// delete ("d") or a message deleted.
std::string expected_body(const transport::RoomMessage& m) {
  const std::string& cmid = m.client_msg_id;
  if (m.entry.deleted || cmid.ends_with("r") || cmid.ends_with("d")) return {};
  return (cmid.ends_with("t") ? "reply of " : "body of ") + cmid;
}

/// How many messages of `history` (a room's whole history) do not show the state its
/// entries make: a delete leaves a tombstone, reaction counts are the (user, key) pairs
/// added, a thread's root counts its thread's messages. Says the first few.
std::uint64_t states_off(const std::string& room, const std::vector<transport::RoomMessage>& history) {
  std::set<std::uint64_t> deleted;
  std::map<std::uint64_t, std::set<std::string>> reacted;  // target -> users (one key: "k")
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> threads;  // root -> replies, last
  for (const auto& m : history) {
    if (m.entry.kind == EntryKind::remove) deleted.insert(m.entry.target);
    if (m.entry.kind == EntryKind::react) reacted[m.entry.target].insert(m.user);
    if (m.entry.kind == EntryKind::message && m.entry.thread != 0) {
      auto& t = threads[m.entry.thread];
      ++t.first;
      t.second = m.seq;
    }
  }
  std::uint64_t off = 0;
  for (const auto& m : history) {
    if (m.entry.kind != EntryKind::message) continue;
    const bool gone = deleted.count(m.seq) > 0;
    std::vector<Reaction> want;
    if (!gone && reacted.count(m.seq)) want.push_back({"k", reacted[m.seq].size()});
    const auto thread = threads[m.seq];
    if (m.entry.deleted == gone && m.entry.reactions == want && m.entry.replies == thread.first &&
        m.entry.last_reply == thread.second)
      continue;
    if (++off <= 5)
      std::cout << "chaos: " << room << " seq " << m.seq << " is not as its entries make it: deleted " << m.entry.deleted
                << " (entries: " << gone << "), " << m.entry.reactions.size() << " reaction keys (entries: " << want.size()
                << "), " << m.entry.replies << " replies (entries: " << thread.first << ")\n";
  }
  return off;
}

/// Publishes messages 64 at a time with publish_async, which the client gathers into
/// publish_batch frames; every item that fails is sent again with its client message id
/// until it is acknowledged. Records every ack.
void batch_publisher(int id, const std::vector<std::string>& rooms, const client::ClientOptions& options,
                     std::atomic<bool>& stop, std::mutex& mu, std::map<std::string, Acked>& acked, Figures& figures,
                     ReadFloors& floors) {
  client::Client c(options);
  const std::string user = "pub" + std::to_string(id);
  for (std::size_t n = 0, round = 0; !stop; ++round) {
    const std::string& room = rooms[(static_cast<std::size_t>(id) + round) % rooms.size()];
    std::vector<std::string> todo;
    for (int i = 0; i < 64; ++i) todo.push_back("b" + std::to_string(id) + "-" + std::to_string(n++));
    figures.sent += todo.size();
    while (!todo.empty()) {
      std::vector<std::string> failed;
      bool unavailable = false;
      for (const auto& cmid : todo)
        c.publish_async(room, user, "body of " + cmid, [&, cmid](const Result<transport::PublishOk>& ack) {
          if (ack) {
            if (ack->duplicate) figures.duplicates++;
            floors.published(user, room, ack->seq);
            std::lock_guard lock(mu);
            acked[cmid] = {room, ack->seq};
            return;
          }
          figures.failed_attempts++;
          failed.push_back(cmid);
          unavailable = unavailable || ack.error().code == errc::unavailable;
        }, cmid);
      c.wait_all();  // every item is answered: acked, or failed after its attempts
      todo = std::move(failed);
      if (unavailable) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a client's back-off
    }
  }
}

/// Marks rooms read until `stop`: as its own user, and one time in four as a publisher
/// (whose marker their messages move too), to a seq near the room's end or, one time in
/// five, anywhere before it (an older seq must change nothing). Each reply's marker is
/// recorded, and checked against the seq asked and what was acknowledged before.
void reader(int id, const std::vector<std::string>& rooms, int publishers, const client::ClientOptions& options,
            std::atomic<bool>& stop, ReadFloors& floors, ReadCheck& check, unsigned seed) {
  client::Client c(options);
  std::mt19937 random(seed);
  const std::string own = "reader" + std::to_string(id);
  auto backoff = [](const Error& e) {  // a client's, while a node or a room's owner is down
    if (e.code == errc::unavailable) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  while (!stop) {
    const auto& room = rooms[std::uniform_int_distribution<std::size_t>(0, rooms.size() - 1)(random)];
    const std::string user =
        random() % 4 == 0 ? "pub" + std::to_string(random() % static_cast<unsigned>(publishers)) : own;
    auto last = c.last_seq(room);
    if (!last || *last == 0) {
      if (!last) backoff(last.error());
      else std::this_thread::sleep_for(std::chrono::milliseconds(10));  // nothing to read yet
      continue;
    }
    const std::uint64_t from = random() % 5 == 0 || *last <= 20 ? 1 : *last - 20;
    const std::uint64_t seq = std::uniform_int_distribution<std::uint64_t>(from, *last)(random);
    const auto floor = floors.of(user, room);
    check.marks++;
    auto r = c.mark_read(room, user, seq);
    if (!r) {
      check.marks_failed++;
      if (r.error().code == errc::bad_field) check.marks_past_end++;  // a last seq the room's new owner lacks
      backoff(r.error());
      continue;
    }
    check.marks_acked++;
    floors.marked(user, room, r->seq);
    check.mark_reply(user, room, seq, r->seq, floor);
  }
}

/// Asks every user's room summaries until `stop`, in turn, of a node at random, one ask
/// every 20 ms at most, and checks each (ReadCheck::summary) against what was acknowledged before it
/// was asked. A summary may only be missing from a reply whose `missing` names a node.
void sampler(const std::vector<std::string>& users, const std::vector<std::string>& rooms, const Target& target,
             std::atomic<bool>& stop, const ReadFloors& floors, ReadCheck& check, unsigned seed) {
  std::vector<std::unique_ptr<client::Client>> clients;
  for (std::size_t i = 0; i < target.size(); ++i)
    clients.push_back(std::make_unique<client::Client>(target.options(i)));
  std::mt19937 random(seed);
  for (std::size_t n = 0; !stop; ++n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the sampling rate, not a wait for an outcome
    const std::string& user = users[n % users.size()];
    const std::size_t node = std::uniform_int_distribution<std::size_t>(0, clients.size() - 1)(random);
    const auto floor = floors.of(user);
    auto r = clients[node]->rooms_summary(user);
    if (!r) {
      check.samples_failed++;
      if (r.error().code == errc::unavailable) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    check.samples++;
    if (!r->missing.empty()) check.samples_incomplete++;
    std::string where = check.where(target.name(node));
    for (const auto& m : r->missing) where += (m == r->missing.front() ? ", missing " : " ") + m;
    for (const auto& summary : r->summaries) {
      auto f = floor.find(summary.room);
      check.summary(user, summary, f == floor.end() ? ReadFloors::Floor{} : f->second, where, r->missing.empty());
    }
    if (r->missing.empty() && r->summaries.size() != rooms.size())
      check.say(check.no_summary, "summaries of " + user + " (" + where + "): " + std::to_string(r->summaries.size()) +
                                      " rooms of " + std::to_string(rooms.size()) + ", and no node missing");
  }
}

/// Makes `request` again while it fails with `unavailable` or a timeout (a breaker not
/// closed yet after the last fault), for at most 30 s.
template <class Request>
auto until_answered(Request request) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  auto answer = request();
  while (!answer && answer.error().code == errc::unavailable && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a client's back-off
    answer = request();
  }
  return answer;
}

std::vector<transport::RoomMessage> whole_history(client::Client& c, const std::string& room, bool& ok) {
  std::vector<transport::RoomMessage> all;
  for (;;) {
    auto page = until_answered(
        [&] { return c.history(room, client::HistoryQuery{1000, std::nullopt, all.empty() ? 0 : all.back().seq}); });
    if (!page) {
      std::cerr << "chaos: history of " << room << ": " << page.error().message << "\n";
      ok = false;
      return all;
    }
    all.insert(all.end(), page->messages.begin(), page->messages.end());
    if (!page->more) return all;
  }
}

/// Soak: reads pages of history at random and checks each is in order and gapless.
void history_reader(const std::vector<std::string>& rooms, const client::ClientOptions& options,
                    std::atomic<bool>& stop, Figures& figures, unsigned seed) {
  client::Client c(options);
  std::mt19937 random(seed);
  while (!stop) {
    const auto& room = rooms[std::uniform_int_distribution<std::size_t>(0, rooms.size() - 1)(random)];
    auto last = c.last_seq(room);
    if (!last) continue;
    const std::uint64_t before = std::uniform_int_distribution<std::uint64_t>(1, *last + 1)(random);
    auto page = c.history(room, client::HistoryQuery{50, before, std::nullopt});
    if (!page) continue;  // unavailable during a fault
    figures.history_reads++;
    for (std::size_t i = 0; i < page->messages.size(); ++i)
      if (page->messages[i].seq >= before || (i > 0 && page->messages[i].seq != page->messages[i - 1].seq + 1)) {
        figures.bad_pages++;
        break;
      }
  }
}

/// Soak: a presence session opened, used and closed over and over, on a new connection
/// each time.
void presence_user(int id, const std::vector<std::string>& rooms, const client::ClientOptions& options,
                   std::atomic<bool>& stop, Figures& figures) {
  const std::string user = "pub" + std::to_string(id);
  auto next_typing = Clock::now();
  while (!stop) {
    client::Client c(options);
    auto p = client::PresenceClient::connect(c, options);
    if (!p) {
      figures.presence_errors++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a client's back-off while the node is down
      continue;
    }
    std::string failed;
    auto step = [&](const auto& result, const char* what) {
      if (!result && failed.empty()) failed = std::string(what) + ": " + result.error().message;
      return static_cast<bool>(result);
    };
    bool ok = step((*p)->open(user), "open");
    for (const auto& room : rooms) {
      if (!ok || stop) break;
      ok = step((*p)->follow(room), "follow") && step((*p)->who(room), "who");
    }
    if (ok && Clock::now() >= next_typing) {  // a user may type once a second (presence's limit)
      ok = step((*p)->typing(rooms.front()), "typing");
      next_typing = Clock::now() + std::chrono::milliseconds(1100);
    }
    ok = ok && step((*p)->set_status(transport::Availability::away, "soaking"), "status") && step((*p)->close(), "close");
    (ok ? figures.presence_cycles : figures.presence_errors)++;
    if (!ok && figures.presence_errors == 1) std::cerr << "chaos: first presence failure: " << failed << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  std::string kinds;
  CLI::App app{"Switchboard's chaos harness: kill -9 or freeze nodes and break the links between them under load, "
               "then check nothing is lost, duplicated or reordered."};
  app.add_option("--faults", s.faults, "Faults to inflict")->capture_default_str();
  app.add_option("--nodes", s.nodes, "1 node, or the 3 nodes of examples/topologies/three-nodes.toml")
      ->capture_default_str()
      ->check(CLI::IsMember({1, 3}));
  app.add_option("--kinds", kinds,
                 "Faults drawn at random, comma-separated: kill (kill -9, restart), freeze (SIGSTOP, SIGCONT), and with "
                 "3 nodes cut, hold, slow (a link between two nodes dropped, stalled, or delayed 20-200 ms)")
      ->default_str("kill");
  app.add_flag("--pause", s.pause, "The same as --kinds freeze");
  app.add_option("--rooms", s.rooms, "Rooms published to")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--publishers", s.publishers, "Publishing clients")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--batch-publishers", s.batch_publishers,
                 "Of the publishers, how many pipeline 64 messages at a time (publish_batch frames)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--seed", s.seed, "Random seed (0: from the clock)");
  app.add_option("--pause-ms", s.pause_ms, "How long a freeze or a broken link lasts")->capture_default_str();
  app.add_option("--soak", s.soak_s,
                 "Run this many seconds with mixed load (history reads, presence sessions, reconnecting clients), "
                 "the faults spread over it, and sample the nodes' memory")
      ->capture_default_str();
  app.add_flag("--replicated", s.replicated,
               "With 3 nodes: each shard has the two other nodes as replicas (ack = replicated, one replica); at the "
               "end every replica must have its primary's whole log");
  app.add_option("--readers", s.readers,
                 "Users marking rooms read during the run (mark_read), each on a client of its own; -1: one per node")
      ->capture_default_str()
      ->check(CLI::Range(-1, 64));
  app.add_option("--max-rss-mb", s.max_rss_mb, "Soak: each node's anonymous memory must stay under this")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (s.seed == 0) s.seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  if (kinds.empty()) kinds = s.pause ? "freeze" : "kill";
  for (std::size_t at = 0; at <= kinds.size();) {
    std::size_t comma = std::min(kinds.find(',', at), kinds.size());
    s.kinds.push_back(kinds.substr(at, comma - at));
    at = comma + 1;
  }
  for (const auto& k : s.kinds) {
    const bool link = k == "cut" || k == "hold" || k == "slow";
    if (!(k == "kill" || k == "freeze" || link) || (link && s.nodes == 1)) {
      std::cerr << "chaos: --kinds: '" << k << "' is not a fault" << (link ? " of one node (use --nodes 3)" : "")
                << "\n";
      return 2;
    }
  }
  if (s.replicated && s.nodes != 3) {
    std::cerr << "chaos: --replicated needs --nodes 3\n";
    return 2;
  }
  std::mt19937 random(s.seed);

  TempDir data;
  std::unique_ptr<Target> target;
  if (s.nodes == 1) target = std::make_unique<OneNode>(data.path());
  else target = std::make_unique<ThreeNodes>(s.replicated);
  std::vector<std::string> rooms;
  for (int r = 0; r < s.rooms; ++r) rooms.push_back(target->room(r));
  if (s.readers < 0) s.readers = static_cast<int>(target->size());
  std::vector<std::string> users;  // every one a member of every room
  for (int p = 0; p < s.publishers; ++p) users.push_back("pub" + std::to_string(p));
  for (int r = 0; r < s.readers; ++r) users.push_back("reader" + std::to_string(r));
  const auto started = Clock::now();
  {
    client::Client setup(target->options(0));
    for (const auto& room : rooms) {
      // Right after the nodes start, their links may not be up yet.
      if (auto made = until_answered([&] { return setup.create_room(room, users.front()); }); !made) {
        std::cerr << "chaos: create " << room << ": " << made.error().message << "\n";
        return 1;
      }
      for (std::size_t u = 1; u < users.size(); ++u)
        if (!until_answered([&] { return setup.join(room, users[u]); })) return 1;
    }
  }

  // A subscriber on every node follows every room from seq 1, through every fault.
  std::atomic<bool> stop_publishing{false}, stop_reading{false};
  Figures figures;
  struct Subscriber {
    std::mutex mu;  // `seen` is the subscriber thread's; main reads how far it got
    std::map<std::string, std::vector<transport::RoomMessage>> seen;
    std::uint64_t errors = 0;
    std::thread thread;
  };
  std::vector<std::unique_ptr<Subscriber>> subscribers;
  for (std::size_t i = 0; i < target->size(); ++i) {
    auto& sub = *subscribers.emplace_back(std::make_unique<Subscriber>());
    sub.thread = std::thread([&, options = target->options(i)] {
      // Soak: every 3 s the subscriber reconnects and resumes each room after the last
      // seq it has (as an app does after a network change).
      std::unique_ptr<client::Client> c;
      auto connect = [&] {
        c = std::make_unique<client::Client>(options);
        for (const auto& room : rooms) {
          std::uint64_t after = 0;
          {
            std::lock_guard lock(sub.mu);
            if (const auto& log = sub.seen[room]; !log.empty()) after = log.back().seq;
          }
          while (!c->subscribe(room, after)) ++sub.errors;
        }
      };
      connect();
      auto reconnect_at = Clock::now() + std::chrono::seconds(3);
      while (!stop_reading) {
        if (s.soak_s > 0 && Clock::now() >= reconnect_at) {
          connect();
          figures.reconnects++;
          reconnect_at = Clock::now() + std::chrono::seconds(3);
        }
        auto m = c->next(client::Millis(200));
        if (!m) {  // a repair failed while a node was down: it is asked again, after a client's back-off
          ++sub.errors;
          if (m.error().code == errc::unavailable) std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        if (!*m) continue;
        std::lock_guard lock(sub.mu);
        sub.seen[(*m)->room].push_back(std::move(**m));
      }
    });
  }

  std::mutex mu;
  std::map<std::string, Acked> acked;
  ReadFloors floors;
  ReadCheck read_check(started);
  const bool soak = s.soak_s > 0;
  std::vector<std::thread> workers;  // publishers, readers, and in a soak the rest of the load
  for (int p = 0; p < s.publishers; ++p)
    if (p >= s.publishers - s.batch_publishers)
      workers.emplace_back(batch_publisher, p, std::cref(rooms), target->options(static_cast<std::size_t>(p)),
                           std::ref(stop_publishing), std::ref(mu), std::ref(acked), std::ref(figures),
                           std::ref(floors));
    else
      workers.emplace_back(publisher, p, std::cref(rooms), target->options(static_cast<std::size_t>(p)), soak,
                           std::ref(stop_publishing), std::ref(mu), std::ref(acked), std::ref(figures),
                           std::ref(floors));
  for (int r = 0; r < s.readers; ++r)
    workers.emplace_back(reader, r, std::cref(rooms), s.publishers, target->options(static_cast<std::size_t>(r)),
                         std::ref(stop_publishing), std::ref(floors), std::ref(read_check),
                         s.seed + 100 + static_cast<unsigned>(r));
  if (s.readers > 0)
    workers.emplace_back(sampler, std::cref(users), std::cref(rooms), std::cref(*target), std::ref(stop_publishing),
                         std::cref(floors), std::ref(read_check), s.seed + 200);
  if (soak)
    for (std::size_t i = 0; i < target->size(); ++i) {
      workers.emplace_back(history_reader, std::cref(rooms), target->options(i), std::ref(stop_publishing),
                           std::ref(figures), s.seed + static_cast<unsigned>(i));
      workers.emplace_back(presence_user, static_cast<int>(i), std::cref(rooms), target->options(i),
                           std::ref(stop_publishing), std::ref(figures));
    }

  // Soak: each node's anonymous memory, sampled every second.
  struct Sample {
    double at_s;
    std::uint64_t kib;
  };
  std::vector<Sample> samples;
  auto sample = [&] {
    std::uint64_t kib = 0;
    for (pid_t pid : target->pids()) kib = std::max(kib, rss_anon_kib(pid));
    samples.push_back({std::chrono::duration<double>(Clock::now() - started).count(), kib});
  };

  std::uniform_int_distribution<int> gap(s.min_gap_ms, s.max_gap_ms);
  std::uniform_int_distribution<std::size_t> kind(0, s.kinds.size() - 1);
  std::map<std::string, int> inflicted;
  std::vector<std::string> schedule;  // each fault, from when to when: printed if a check fails
  const auto soak_end = started + std::chrono::seconds(s.soak_s);
  // A soak spreads its faults over its length: one every soak / (faults + 1).
  const auto soak_gap = std::chrono::milliseconds(s.soak_s * 1000 / (s.faults + 1));
  auto next_fault = Clock::now() + (soak ? soak_gap : std::chrono::milliseconds(gap(random)));
  for (int f = 0; f < s.faults || (soak && Clock::now() < soak_end);) {
    if (soak) sample();
    const auto wake = soak ? std::min(next_fault, Clock::now() + std::chrono::seconds(1)) : next_fault;
    std::this_thread::sleep_until(wake);  // a random moment (the chaos schedule), or the next memory sample
    if (f >= s.faults || Clock::now() < next_fault) continue;
    const std::string& k = s.kinds[kind(random)];
    const double from = std::chrono::duration<double>(Clock::now() - started).count();
    const std::string what = target->inflict(k, random, s);
    char line[120];
    std::snprintf(line, sizeof line, "%.2f-%.2f s %s", from,
                  std::chrono::duration<double>(Clock::now() - started).count(), what.c_str());
    schedule.emplace_back(line);
    ++inflicted[k];
    ++f;
    next_fault = Clock::now() + (soak ? soak_gap : std::chrono::milliseconds(gap(random)));
  }
  stop_publishing = true;
  for (auto& t : workers) t.join();
  if (soak) sample();

  // Every publish was acked; every subscriber catches up to each room's last acked seq.
  std::map<std::string, std::uint64_t> last;
  for (const auto& [cmid, a] : acked) last[a.room] = std::max(last[a.room], a.seq);
  const auto catch_up = Clock::now() + std::chrono::seconds(60);
  auto caught_up = [&] {
    for (auto& sub : subscribers) {
      std::lock_guard lock(sub->mu);
      for (const auto& [room, seq] : last)
        if (sub->seen[room].size() < seq) return false;
    }
    return true;
  };
  while (!caught_up() && Clock::now() < catch_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop_reading = true;  // each subscriber thread owns its `seen` until it has stopped
  std::uint64_t sub_errors = 0;
  for (auto& sub : subscribers) {
    sub->thread.join();
    sub_errors += sub->errors;
  }

  // The checks.
  bool ok = true;
  std::uint64_t lost = 0, stored_twice = 0, gaps = 0, unknown = 0, sub_mismatch = 0, stored_total = 0, states = 0;
  client::Client checker(target->options(0));
  std::map<std::string, std::uint64_t> stored_last;  // room -> the last seq its history holds
  for (const auto& room : rooms) {
    auto history = whole_history(checker, room, ok);
    stored_total += history.size();
    stored_last[room] = history.empty() ? 0 : history.back().seq;
    std::map<std::string, std::uint64_t> at;  // cmid -> seq
    for (std::size_t i = 0; i < history.size(); ++i) {
      if (history[i].seq != i + 1) ++gaps;
      if (auto [it, fresh] = at.emplace(history[i].client_msg_id, history[i].seq); !fresh && ++stored_twice <= 5)
        std::cout << "chaos: " << history[i].client_msg_id << " is stored twice in " << room << ", at seq " << it->second
                  << " and at seq " << history[i].seq << "\n";
      auto a = acked.find(history[i].client_msg_id);
      if (a == acked.end() || a->second.room != room || history[i].body != expected_body(history[i])) ++unknown;
    }
    states += states_off(room, history);
    for (const auto& [cmid, a] : acked)
      if (a.room == room) {
        auto it = at.find(cmid);
        if (it == at.end() || it->second != a.seq)
          if (++lost <= 5)
            std::cout << "chaos: " << cmid << " was acknowledged at seq " << a.seq << " of " << room << "; the history has "
                      << (it == at.end() ? std::string("it nowhere") : "it at seq " + std::to_string(it->second)) << "\n";
      }
    for (std::size_t n = 0; n < subscribers.size(); ++n) {
      const auto& log = subscribers[n]->seen[room];
      std::size_t i = 0;
      while (i < log.size() && i < history.size() && log[i].seq == history[i].seq &&
             log[i].client_msg_id == history[i].client_msg_id)
        ++i;
      if (i == log.size() && i == history.size()) continue;
      // Where they part, for whoever reads the failure.
      if (++sub_mismatch <= 5) {
        auto at = [](const std::vector<transport::RoomMessage>& v, std::size_t k) {
          return k < v.size() ? "seq " + std::to_string(v[k].seq) + " " + v[k].client_msg_id : std::string("nothing");
        };
        std::cout << "chaos: the subscriber on node " << n << " saw " << log.size() << " messages of " << room
                  << ", the history has " << history.size() << "; at index " << i << " it saw " << at(log, i)
                  << ", the history has " << at(history, i) << "\n";
      }
    }
  }
  // Read markers at the end: every user's summaries, asked of every node, complete
  // (no node missing), each against every reply acknowledged during the run and every
  // summary sampled; every node must give the same marker.
  std::map<std::pair<std::string, std::string>, std::uint64_t> final_read;  // (user, room) -> read_seq
  for (std::size_t i = 0; i < target->size() && s.readers > 0; ++i) {
    client::Client c(target->options(i));
    for (const auto& user : users) {
      const auto floor = floors.of(user);
      const std::string where = read_check.where(target->name(i)) + ", at the end";
      auto list = until_answered([&] { return c.rooms_summary(user); });
      // A node restarted by the last fault may not be linked to the others yet.
      for (const auto deadline = Clock::now() + std::chrono::seconds(30);
           list && !list->missing.empty() && Clock::now() < deadline;
           list = until_answered([&] { return c.rooms_summary(user); }))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a client's back-off
      if (!list || !list->missing.empty()) {
        read_check.say(read_check.no_summary, "summaries of " + user + " (" + where + "): " +
                                                  (list ? "node " + list->missing.front() + " missing"
                                                        : list.error().message));
        continue;
      }
      std::map<std::string, const transport::RoomSummary*> by_room;
      for (const auto& summary : list->summaries) by_room[summary.room] = &summary;
      for (const auto& room : rooms) {
        auto it = by_room.find(room);
        if (it == by_room.end()) {
          read_check.say(read_check.no_summary, "summaries of " + user + " (" + where + "): none of " + room);
          continue;
        }
        const transport::RoomSummary& summary = *it->second;
        auto f = floor.find(room);
        read_check.summary(user, summary, f == floor.end() ? ReadFloors::Floor{} : f->second, where, true);
        if (summary.last_seq != stored_last[room])
          read_check.say(read_check.last_not_history, user + " in " + room + " (" + where + "): last_seq " +
                                                          std::to_string(summary.last_seq) + ", the history's " +
                                                          std::to_string(stored_last[room]));
        if (auto [first, fresh] = final_read.try_emplace({user, room}, summary.read_seq);
            !fresh && first->second != summary.read_seq)
          read_check.say(read_check.nodes_disagree, user + " in " + room + ": read_seq " +
                                                        std::to_string(summary.read_seq) + " on node " +
                                                        target->name(i) + ", " + std::to_string(first->second) +
                                                        " on node " + target->name(0));
      }
    }
  }
  const bool read_state_ok =
      s.readers == 0 || (read_check.violations() == 0 && read_check.marks_acked > 0 && read_check.samples > 0);

  const bool all_acked = acked.size() == figures.sent.load();
  ok = ok && lost == 0 && stored_twice == 0 && gaps == 0 && unknown == 0 && states == 0 && sub_mismatch == 0 && all_acked &&
       figures.bad_pages == 0 && read_state_ok;
  if (soak) {
    std::uint64_t peak = 0;
    for (const auto& x : samples) peak = std::max(peak, x.kib);
    const auto mib = [](std::uint64_t kib) { return std::to_string(kib / 1024) + " MiB"; };
    std::cout << "soak: " << s.soak_s << " s; node anonymous memory (RssAnon, the largest node's) every "
              << std::max<std::size_t>(1, samples.size() / 10) << " s:";
    for (std::size_t i = 0; i < samples.size(); i += std::max<std::size_t>(1, samples.size() / 10))
      std::cout << " " << mib(samples[i].kib);
    std::cout << "\nsoak: start " << mib(samples.front().kib) << ", end " << mib(samples.back().kib) << ", peak "
              << mib(peak) << " (bound " << s.max_rss_mb << " MiB)\n"
              << "soak: reconnects " << figures.reconnects << ", history pages read " << figures.history_reads
              << " (out of order or gapped: " << figures.bad_pages << "), presence cycles " << figures.presence_cycles
              << " (failed " << figures.presence_errors << ")\n";
    if (peak / 1024 >= static_cast<std::uint64_t>(s.max_rss_mb)) ok = false;
    if (figures.presence_cycles == 0 || figures.history_reads == 0) ok = false;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << "chaos: nodes " << s.nodes << ", faults " << s.faults << " (";
  for (auto it = inflicted.begin(); it != inflicted.end(); ++it)
    std::cout << (it == inflicted.begin() ? "" : ", ") << it->first << " " << it->second;
  std::cout << "), seed " << s.seed << ", rooms " << s.rooms << ", publishers " << s.publishers << ", " << seconds
            << " s (" << s.batch_publishers << " of the publishers in batches)\n"
            << "chaos: sent " << figures.sent << ", acked " << acked.size() << ", stored " << stored_total
            << ", failed attempts retried " << figures.failed_attempts << ", acked as duplicates "
            << figures.duplicates << ", subscriber repairs failed and retried " << sub_errors << "\n"
            << "chaos: lost " << lost << ", stored twice " << stored_twice << ", seq gaps " << gaps
            << ", never sent " << unknown << ", (subscriber, room) logs that differ from the history "
            << sub_mismatch << "\n"
            << "chaos: reactions, thread replies and deletes acked " << figures.changes
            << " (refused by the rules " << figures.refused << "); messages not as their entries make them " << states
            << "\n";
  if (s.readers > 0)
    std::cout << "chaos: read markers: readers " << s.readers << "; mark_read sent " << read_check.marks << ", acked "
              << read_check.marks_acked << " (failed " << read_check.marks_failed << ", of which past the room's end "
              << read_check.marks_past_end << "); summaries asked " << read_check.samples << " times during the run ("
              << read_check.samples_incomplete << " with a node missing, " << read_check.samples_failed
              << " unanswered) and of every node at the end: " << read_check.summaries
              << " (user, room) summaries checked\n"
              << "chaos: read markers: behind an acknowledged one " << read_check.behind_acked << ", moved backwards "
              << read_check.backwards << ", unread off " << read_check.unread_off << ", past the last seq "
              << read_check.past_last << ", mark_read replies behind " << read_check.reply_behind
              << ", summaries absent " << read_check.no_summary << ", last seq not the history's "
              << read_check.last_not_history << ", nodes disagree " << read_check.nodes_disagree
              << "; behind in a reply with a node missing (a replica's copy, not a failure) "
              << read_check.stale_incomplete << "\n";
  if (!ok)
    for (const auto& line : schedule) std::cout << "chaos: fault " << line << "\n";
  std::cout << "chaos: " << (ok ? "PASS" : "FAIL") << std::endl;
  if (s.replicated) {
    const auto converged = static_cast<ThreeNodes&>(*target).replicas_converge();
    std::cout << "chaos: replicas " << (converged ? "caught up with their primaries" : "DID NOT catch up") << "\n";
    ok = ok && converged;
    if (converged) {
      // Each shard began in term 1 with its owner as primary: every term since is an
      // election held (a split vote's too), after a primary was lost.
      std::uint64_t elections = 0;
      std::cout << "chaos: shards at the end:";
      for (const auto& shard : converged->shards) {
        std::cout << " " << shard.name << " primary " << shard.primary << " term " << shard.term << ";";
        elections += shard.term > 1 ? shard.term - 1 : 0;
      }
      std::cout << " elections " << elections << "\n";
    }
  }
  if (!target->stop()) {
    std::cout << "chaos: a node did not stop cleanly\n";
    ok = false;
  }
  return ok ? 0 : 1;
}
