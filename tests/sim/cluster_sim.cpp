// The simulation (cluster_sim.hpp): an event queue in simulated time, the members'
// actors, the links, the clients, and the checks.
#include "cluster_sim.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <sstream>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/persistence.hpp"
#include "switchboard/actors/store_protocol.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::sim {
namespace {

using namespace std::chrono_literals;
using actors::Effects;
using actors::Inbound;
using actors::Now;
using actors::SteadyClock;
using Clock = SteadyClock;
namespace fs = std::filesystem;

constexpr const char* kShard = "s";
constexpr std::uint64_t kStartWall = 1'700'000'000'000;

/// Stops the run at the first invariant broken.
struct Violation {
  std::string what;
};

std::string member_name(int i) { return "n" + std::to_string(i); }

class World {
 public:
  explicit World(const SimOptions& options) : o_(options), rng_(options.seed) {
    for (int i = 0; i < o_.members; ++i) names_.push_back(member_name(i));
    shard_.name = kShard;
    shard_.owner = names_[0];
    shard_.replicas.assign(names_.begin() + 1, names_.end());
    shard_.ack = router::ShardConfig::Ack::replicated;
    shard_.ack_replicas = 1;
    peers_.heartbeat = 1000ms;
    peers_.misses = o_.misses;
    peers_.request_timeout = 3000ms;
    for (int i = 0; i < o_.rooms; ++i) rooms_.push_back("room-" + std::to_string(i));
    fs::remove_all(o_.dir);
    fs::create_directories(o_.dir);
    for (const auto& name : names_) {
      nodes_[name].name = name;
      nodes_[name].dir = o_.dir / name;
    }
  }
  ~World() {
    for (auto& [name, node] : nodes_) take_down(node);
    std::error_code ignored;
    fs::remove_all(o_.dir, ignored);
  }

  SimResult run() {
    try {
      for (auto& [name, node] : nodes_) boot(node);
      for (int i = 0; i < o_.clients; ++i) add_client(i);
      plan_faults();
      every_second();
      at(o_.faulty_for, [this] { heal_all(); });
      while (!events_.empty()) {
        Event e = events_.top();
        events_.pop();
        if (e.at > now_.steady) {
          now_.wall_ms += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(e.at - now_.steady).count());
          now_.steady = e.at;
        }
        ++result_.steps;
        e.run();
        if (finished_) break;
      }
      if (!finished_) throw Violation{"the event queue ran dry before the run ended"};
      final_checks();
    } catch (const Violation& v) {
      result_.ok = false;
      result_.violation = "at " + time_text() + ": " + v.what;
    }
    result_.schedule = schedule_;
    return result_;
  }

 private:
  // ---- time, randomness, events ------------------------------------------------------

  struct Event {
    Clock::time_point at;
    std::uint64_t order;
    std::function<void()> run;
    bool operator>(const Event& other) const { return std::tie(at, order) > std::tie(other.at, other.order); }
  };
  void at(Clock::duration after, std::function<void()> run) {
    events_.push(Event{now_.steady + after, next_order_++, std::move(run)});
  }
  std::uint64_t uniform(std::uint64_t low, std::uint64_t high) {
    return std::uniform_int_distribution<std::uint64_t>(low, high)(rng_);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  std::chrono::microseconds micros(std::uint64_t low, std::uint64_t high) {
    return std::chrono::microseconds(uniform(low, high));
  }
  std::uint64_t elapsed_ms() const {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now_.steady - Clock::time_point{}).count());
  }
  std::string time_text() const { return std::to_string(elapsed_ms()) + " ms"; }
  void note(const std::string& what) {
    schedule_.push_back(time_text() + ": " + what);
    if (o_.verbose) spdlog::warn("sim: {}", schedule_.back());
  }

  // ---- members -----------------------------------------------------------------------

  /// A member's log as its store has it: lsn -> (term, hash of the body).
  using LogView = std::map<std::uint64_t, std::pair<std::uint64_t, std::size_t>>;
  struct Node {
    std::string name;
    fs::path dir;
    bool up = false, paused = false;
    std::uint64_t life = 0;  ///< which process it is: frames and timers of an earlier one are dropped
    std::unique_ptr<actors::Persistence> persistence;
    std::unique_ptr<actors::Chat> chat;
    std::optional<persistence::HistoryStore::Reader> reader;  ///< for the checks
    std::vector<std::string> disk;  ///< frames at persistence, not yet taken
    bool disk_due = false;
    bool disk_logs = false;  ///< a frame waiting at persistence changes the log
    std::deque<std::function<void()>> held;  ///< what reached it while it was paused
    LogView log;
    std::uint64_t log_end = 0;  ///< where its log ends (entries may be trimmed, or a copy's)
    bool log_dirty = true;
  };

  void boot(Node& node) {
    persistence::StoreOptions store_options;
    store_options.dir = node.dir;
    store_options.durability = persistence::Durability::nosync;  // a process crash keeps what was committed
    store_options.initial_map_bytes = 4u << 20;
    store_options.max_map_bytes = 1ull << 30;
    auto store = persistence::HistoryStore::open(store_options);
    if (!store) throw Violation{"member " + node.name + " cannot open its store: " + store.error().message};
    const auto window = static_cast<std::uint64_t>(transport::Limits{}.dedup_window.count());
    auto snapshot = store->snapshot(now_.wall_ms - window);
    if (!snapshot) throw Violation{"member " + node.name + " cannot read its store: " + snapshot.error().message};
    node.reader.emplace(store->reader());

    actors::PersistenceOptions p_options{transport::Limits{}};
    p_options.copies_dir = node.dir / "copies";
    p_options.in_shard = [placement = router::RoomPlacement({shard_})](const std::string& shard, std::string_view room) {
      return placement.owner_of(room).name == shard;
    };
    node.persistence = std::make_unique<actors::Persistence>(std::move(*store), p_options);

    actors::ChatOptions c_options;
    c_options.node_name = node.name;
    std::vector<std::string> others;
    for (const auto& n : names_)
      if (n != node.name) others.push_back(n);
    c_options.cluster = actors::ChatCluster{node.name, {shard_}, others, peers_};
    c_options.seed = static_cast<std::uint32_t>(uniform(0, 0xffffffffu));
    node.chat = std::make_unique<actors::Chat>(c_options, *snapshot);
    node.up = true;
    node.paused = false;
    ++node.life;
    node.log_dirty = true;
    Effects fx;
    node.persistence->on_start({}, {}, now_, fx);
    carry_out_disk(node, fx);
    node.chat->on_start({"inproc://chat"}, {"inproc://pub"}, now_, fx);
    carry_out(node, fx);
  }

  /// The process is gone: what was committed stays in its directory, nothing else.
  void take_down(Node& node) {
    if (!node.up) return;
    for (const auto& frame : node.disk) (void)actors::store::receive(frame);  // handed over: freed
    node.disk.clear();
    node.disk_due = node.disk_logs = false;
    node.held.clear();
    node.chat.reset();
    node.persistence.reset();
    node.reader.reset();
    node.up = false;
    node.paused = false;
    ++node.life;
  }

  // ---- carrying out what the actors ask ---------------------------------------------

  void carry_out(Node& node, Effects& fx) {
    auto list = std::move(fx.list());
    fx.clear();
    for (auto& effect : list) {
      if (auto* r = std::get_if<Effects::Reply>(&effect)) {
        if (r->node) send_link(node, r->to, std::move(r->payload), true);
        else to_client(node, r->to, std::move(r->payload));
      } else if (auto* s = std::get_if<Effects::Send>(&effect)) {
        if (s->actor == "persistence") to_disk(node, std::move(s->payload));
        else if (s->actor.starts_with('@')) send_link(node, s->actor.substr(1), std::move(s->payload), false);
      } else if (auto* t = std::get_if<Effects::Timer>(&effect)) {
        const std::uint64_t life = node.life, id = t->id;
        Node* n = &node;
        events_.push(Event{std::max(t->at, now_.steady), next_order_++, [this, n, life, id] {
                             if (n->life != life || !n->up) return;
                             if (n->paused) return n->held.push_back([this, n, id] { fire(*n, id); });
                             fire(*n, id);
                           }});
      }
      // Publishes and subscriptions: the feeds between members are not simulated (a
      // subscriber's repair from history is the client library's, tested elsewhere).
    }
  }
  void fire(Node& node, std::uint64_t id) {
    Effects fx;
    node.chat->on_timer(id, now_, fx);
    carry_out(node, fx);
  }

  /// One message into a member's chat, then on_drained, as the runtime does.
  void into_chat(Node& node, std::uint64_t life, Inbound::Via via, const std::string& sender, std::string frame,
                 bool has_frame = true) {
    if (node.life != life || !node.up) {
      if (sender == "persistence") (void)actors::store::receive(frame);  // handed over: freed
      return;
    }
    if (node.paused) {
      Node* n = &node;
      node.held.push_back([this, n, life, via, sender, frame = std::move(frame), has_frame]() mutable {
        into_chat(*n, life, via, sender, std::move(frame), has_frame);
      });
      return;
    }
    Inbound in;
    in.via = via;
    in.sender = sender;
    if (has_frame) in.frames.push_back(frame);
    Effects fx;
    node.chat->on_message(in, now_, fx);
    node.chat->on_drained(now_, fx);
    carry_out(node, fx);
  }

  void to_disk(Node& node, std::string frame) {
    if (auto message = actors::store::receive(frame)) {
      // Looked at (and handed over again) to know which writes change the log.
      if (std::holds_alternative<actors::store::Truncate>(*message) || std::holds_alternative<actors::store::CopyOp>(*message))
        node.disk_logs = true;
      else if (auto* append = std::get_if<actors::store::Append>(&*message))
        for (const auto& record : append->records)
          if (std::holds_alternative<persistence::LogEntry>(record) ||
              std::holds_alternative<persistence::TruncateLog>(record) || std::holds_alternative<persistence::TrimLog>(record))
            node.disk_logs = true;
      frame = actors::store::hand_over(std::move(*message));
    }
    node.disk.push_back(std::move(frame));
    if (node.disk_due) return;
    node.disk_due = true;
    const std::uint64_t life = node.life;
    Node* n = &node;
    at(micros(200, 4000), [this, n, life] { run_disk(*n, life); });
  }
  /// Persistence takes every frame waiting (a group commit) and answers.
  void run_disk(Node& node, std::uint64_t life) {
    if (node.life != life || !node.up) return;
    if (node.paused) {
      Node* n = &node;
      node.held.push_back([this, n, life] { run_disk(*n, life); });
      return;
    }
    node.disk_due = false;
    auto frames = std::move(node.disk);
    node.disk.clear();
    Effects fx;
    for (const auto& frame : frames) {
      Inbound in;
      in.via = Inbound::Via::mailbox;
      in.sender = "chat";
      in.frames.push_back(frame);
      node.persistence->on_message(in, now_, fx);
    }
    node.persistence->on_drained(now_, fx);
    if (node.disk_logs) node.log_dirty = true;  // committed now: read again when looked at
    node.disk_logs = false;
    carry_out_disk(node, fx);
  }
  /// Persistence's answers reach chat in the order given (an inproc socket), a moment later.
  void carry_out_disk(Node& node, Effects& fx) {
    std::vector<std::string> replies;
    for (auto& effect : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&effect)) replies.push_back(std::move(r->payload));
    fx.clear();
    if (replies.empty()) return;
    const std::uint64_t life = node.life;
    Node* n = &node;
    at(50us, [this, n, life, replies = std::move(replies)]() mutable {
      for (auto& payload : replies) into_chat(*n, life, Inbound::Via::peer, "persistence", std::move(payload));
    });
  }

  // ---- the network between members ---------------------------------------------------

  struct Link {
    bool cut = false;   ///< frames vanish (the link is up to both ends)
    double loss = 0.0;  ///< each frame vanishes with this chance
    Clock::time_point last{};  ///< frames arrive in order, after the one before
  };
  Link& link(const std::string& from, const std::string& to) { return links_[{from, to}]; }

  /// A frame from `from`'s chat to `to`'s: a request on its DEALER (Via::node there), or
  /// a reply to one (Via::peer there).
  void send_link(Node& from, const std::string& to, std::string frame, bool reply) {
    ++result_.frames;
    if (!reply) observe(from, frame);
    if (spdlog::should_log(spdlog::level::trace))
      if (auto peer = router::decode_peer(frame))
        spdlog::trace("sim: {} ms: {} -> {}: '{}' {}{}", elapsed_ms(), from.name, to, static_cast<char>(peer->kind), peer->corr,
                      nodes_.count(to) && nodes_.at(to).up ? "" : " (down)");
    auto target = nodes_.find(to);
    if (target == nodes_.end()) return;
    Node& dest = target->second;
    if (!dest.up) {
      // No connection: the runtime hands a send back at once (a reply is dropped).
      if (!reply) {
        const std::uint64_t life = from.life;
        Node* f = &from;
        at(0us, [this, f, life, to, frame = std::move(frame)]() mutable {
          into_chat(*f, life, Inbound::Via::undeliverable, "@" + to, std::move(frame));
        });
      }
      return;
    }
    Link& l = link(from.name, to);
    if (l.cut || (l.loss > 0 && chance(l.loss))) return;
    auto when = now_.steady + micros(100, 2000);
    if (!o_.adversarial) when = std::max(when, l.last);  // TCP: in order
    l.last = when;
    const std::uint64_t life = dest.life;
    Node* d = &dest;
    const Inbound::Via via = reply ? Inbound::Via::peer : Inbound::Via::node;
    const std::string sender = reply ? "@" + from.name : from.name;
    const int copies = o_.adversarial && chance(0.02) ? 2 : 1;
    for (int i = 0; i < copies; ++i)
      events_.push(Event{when + (i ? micros(0, 5000) : 0us), next_order_++, [this, d, life, via, sender, frame]() mutable {
                           into_chat(*d, life, via, sender, std::move(frame));
                         }});
  }

  // ---- faults -----------------------------------------------------------------------

  void plan_faults() {
    std::vector<std::string> kinds(o_.kinds.begin(), o_.kinds.end());
    if (kinds.empty()) return;
    const auto faults = uniform(static_cast<std::uint64_t>(o_.min_faults), static_cast<std::uint64_t>(o_.max_faults));
    const auto span = static_cast<std::uint64_t>(o_.faulty_for.count());
    for (std::uint64_t i = 0; i < faults; ++i) {
      const auto start = std::chrono::milliseconds(uniform(2000, span > 3000 ? span - 1000 : 2000));
      const auto lasts = std::chrono::milliseconds(uniform(300, 8000));
      const std::string kind = kinds[uniform(0, kinds.size() - 1)];
      const std::string target = names_[uniform(0, names_.size() - 1)];
      at(start, [this, kind, target, lasts] { fault(kind, target, lasts); });
    }
  }

  void fault(const std::string& kind, const std::string& target, std::chrono::milliseconds lasts) {
    if (healed_) return;
    Node& node = nodes_.at(target);
    // The primary lost, with no other fault on: timed until another member's term can
    // acknowledge writes. A fault that comes on meanwhile spoils the figure.
    if (loss_) loss_->alone = false;
    if (target == primary_now_ && kind != "lossy" && !loss_ && node.up && !node.paused && faults_on_ == 0)
      loss_ = Loss{now_.steady, term_now_, target, kind == "disk" ? "crash" : kind == "oneway" ? "partition" : kind};
    ++faults_on_;
    at(lasts, [this] { --faults_on_; });  // as long as it lasts (a crash: until the restart)
    if (kind == "crash" || kind == "disk") {
      // One member's disk at most: a shard keeps what a majority of its members keep,
      // and a second loss before the first is rebuilt can take a majority's copies.
      if (!node.up || (kind == "disk" && disk_lost_)) return;
      if (kind == "disk") disk_lost_ = true;
      note(kind == "disk" ? target + " crashes and loses its data directory" : target + " crashes");
      crash(node);
      if (kind == "disk") fs::remove_all(node.dir);
      at(lasts, [this, target] { restart(target); });
    } else if (kind == "pause") {
      if (!node.up || node.paused) return;
      note(target + " pauses");
      node.paused = true;
      const std::uint64_t life = node.life;
      at(lasts, [this, target, life] {
        if (nodes_.at(target).life == life) resume(target);
      });
    } else if (kind == "partition" || kind == "oneway") {
      // `target` alone on one side, or with another member (a minority of five).
      std::set<std::string> side{target};
      if (o_.members >= 5 && chance(0.5)) side.insert(names_[uniform(0, names_.size() - 1)]);
      const bool outbound = chance(0.5);
      std::string text;
      for (const auto& s : side) text += (text.empty() ? "" : ",") + s;
      note(kind == "partition" ? "partition {" + text + "} | the rest"
                               : std::string("one-way cut: ") + (outbound ? "{" + text + "} -> the rest" : "the rest -> {" + text + "}"));
      std::vector<std::pair<std::string, std::string>> cut;
      for (const auto& a : side)
        for (const auto& b : names_) {
          if (side.count(b)) continue;
          if (kind == "partition" || outbound) cut.emplace_back(a, b);
          if (kind == "partition" || !outbound) cut.emplace_back(b, a);
        }
      for (const auto& [a, b] : cut) link(a, b).cut = true;
      at(lasts, [this, cut, text] {
        if (healed_) return;
        note("links of {" + text + "} healed");
        if (loss_ && text.find(loss_->node) != std::string::npos) loss_.reset();  // it rode it out
        for (const auto& [a, b] : cut) link(a, b).cut = false;
      });
    } else if (kind == "lossy") {
      const double loss = 0.05 * static_cast<double>(uniform(1, 6));
      note("links from and to " + target + " lose " + std::to_string(static_cast<int>(loss * 100)) + "% of frames");
      for (const auto& other : names_)
        if (other != target) link(target, other).loss = link(other, target).loss = loss;
      at(lasts, [this, target] {
        if (healed_) return;
        note("links from and to " + target + " lose nothing");
        for (const auto& other : names_)
          if (other != target) link(target, other).loss = link(other, target).loss = 0;
      });
    }
  }

  void crash(Node& node) {
    take_down(node);
    // Its connections drop: every other member's runtime tells its chat at once.
    for (auto& [name, other] : nodes_) {
      if (name == node.name || !other.up) continue;
      const std::uint64_t life = other.life;
      Node* o = &other;
      const std::string sender = "@" + node.name;
      at(micros(10, 500), [this, o, life, sender] { into_chat(*o, life, Inbound::Via::undeliverable, sender, {}, false); });
    }
  }
  void restart(const std::string& target) {
    Node& node = nodes_.at(target);
    if (node.up) return;
    note(target + " restarts");
    if (loss_ && loss_->node == target) loss_.reset();
    for (const auto& other : names_) link(target, other).last = link(other, target).last = Clock::time_point{};
    boot(node);
  }
  void resume(const std::string& target) {
    Node& node = nodes_.at(target);
    if (!node.paused) return;
    note(target + " resumes");
    if (loss_ && loss_->node == target) loss_.reset();
    node.paused = false;
    auto held = std::move(node.held);
    node.held.clear();
    for (auto& run : held) run();  // each checks the process is still the one it was for
  }

  void heal_all() {
    note("every fault healed");
    healed_ = true;
    heal_at_ = now_.steady;
    for (auto& [key, l] : links_) l.cut = false, l.loss = 0;
    for (const auto& name : names_) {
      if (!nodes_.at(name).up) restart(name);
      else if (nodes_.at(name).paused) resume(name);
    }
    at(500ms, [this] { converge_check(); });
  }

  // ---- clients -----------------------------------------------------------------------

  struct Op {
    enum class Kind { create, join, publish, read, react, unreact, remove, reply } kind;
    std::string room;
    std::string cmid;
    std::uint64_t target = 0;  ///< react, unreact, remove, reply (its root): chosen at its first attempt (0: none yet)
    std::string key = {};
    bool change() const {
      return kind == Kind::react || kind == Kind::unreact || kind == Kind::remove || kind == Kind::reply;
    }
  };
  struct Client {
    std::string name, user, node;
    std::vector<Op> ops;
    std::size_t next = 0;
    std::uint64_t request_id = 0;  ///< of the op in flight (the same on every attempt, as the client library does)
    std::map<std::string, std::vector<std::uint64_t>> own;  ///< room -> seqs of its acknowledged messages
    std::uint64_t attempt = 0;
    bool waiting = false;
  };

  void add_client(int i) {
    Client c;
    c.name = "c" + std::to_string(i);
    c.user = "u" + std::to_string(i);
    c.node = names_[uniform(0, names_.size() - 1)];
    for (const auto& room : rooms_) {
      c.ops.push_back({Op::Kind::create, room, {}});
      c.ops.push_back({Op::Kind::join, room, {}});
    }
    for (int k = 0; k < o_.publishes; ++k) {
      c.ops.push_back({Op::Kind::publish, rooms_[uniform(0, rooms_.size() - 1)], c.name + "-" + std::to_string(k)});
      if (chance(0.3)) c.ops.push_back({Op::Kind::read, rooms_[uniform(0, rooms_.size() - 1)], {}});
      if (chance(o_.changes)) {
        const double which = std::uniform_real_distribution<double>(0, 1)(rng_);
        const auto kind = which < 0.45  ? Op::Kind::react
                          : which < 0.6 ? Op::Kind::unreact
                          : which < 0.75 ? Op::Kind::remove
                                         : Op::Kind::reply;
        c.ops.push_back({kind, rooms_[uniform(0, rooms_.size() - 1)], c.name + "-x" + std::to_string(k), 0,
                         chance(0.5) ? "a" : "b"});
      }
    }
    clients_.push_back(std::move(c));
    const std::size_t index = clients_.size() - 1;
    at(std::chrono::milliseconds(uniform(0, 500)), [this, index] { start_op(index); });
  }

  transport::RequestBody request_of(const Client& c, const Op& op) {
    switch (op.kind) {
      case Op::Kind::create: return transport::CreateRoom{op.room, c.user};
      case Op::Kind::join: return transport::Join{op.room, c.user};
      case Op::Kind::publish: return transport::Publish{op.room, c.user, op.cmid, "body of " + op.cmid};
      case Op::Kind::reply: {  // in the thread of its target, answering it half the time
        transport::Publish p{op.room, c.user, op.cmid, "reply of " + op.cmid};
        p.thread = op.target;
        if (op.key == "a") p.reply_to = op.target;
        return p;
      }
      case Op::Kind::react:
      case Op::Kind::unreact:
      case Op::Kind::remove: {
        transport::Publish p{op.room, c.user, op.cmid, {}};
        p.kind = op.kind == Op::Kind::remove ? EntryKind::remove : EntryKind::react;
        p.target = op.target;
        p.key = op.kind == Op::Kind::remove ? std::string() : op.key;
        p.on = op.kind == Op::Kind::react;
        return p;
      }
      case Op::Kind::read: {
        transport::History h{op.room, 50, std::nullopt, std::nullopt};
        const auto last = last_acked_[op.room];
        if (last > 10) h.after = uniform(0, last - 5);
        return h;
      }
    }
    return transport::LastSeq{op.room};
  }

  void start_op(std::size_t index) {
    Client& c = clients_[index];
    if (c.next >= c.ops.size()) return;
    if (Op& op = c.ops[c.next]; op.change() && op.target == 0) {
      // Its target, once: a message of the room acknowledged by now (a delete: one of its own).
      const auto& pool = op.kind == Op::Kind::remove ? c.own[op.room] : messages_acked_[op.room];
      if (pool.empty()) {  // nothing to change yet: the op is skipped
        ++c.next;
        return start_op(index);
      }
      op.target = pool[uniform(0, pool.size() - 1)];
    }
    c.request_id = next_request_++;
    c.attempt = 0;
    send_attempt(index);
  }
  void send_attempt(std::size_t index) {
    Client& c = clients_[index];
    const std::uint64_t attempt = ++c.attempt;
    c.waiting = true;
    Node& node = nodes_.at(c.node);
    const std::string frame = transport::encode_request({c.request_id, request_of(c, c.ops[c.next])});
    if (node.up) {
      const std::uint64_t life = node.life;
      Node* n = &node;
      at(micros(50, 1000), [this, n, life, sender = c.name, frame] {
        into_chat(*n, life, Inbound::Via::mailbox, sender, frame);
      });
    }
    // No answer within the attempt's time: again, perhaps through another member.
    at(1000ms, [this, index, attempt] {
      Client& again = clients_[index];
      if (!again.waiting || again.attempt != attempt) return;
      retry(index);
    });
  }
  void retry(std::size_t index) {
    Client& c = clients_[index];
    if (chance(0.5)) c.node = names_[uniform(0, names_.size() - 1)];
    send_attempt(index);
  }

  void to_client(Node& node, const std::string& to, std::string payload) {
    auto it = std::find_if(clients_.begin(), clients_.end(), [&](const Client& c) { return c.name == to; });
    if (it == clients_.end()) return;
    const std::size_t index = static_cast<std::size_t>(it - clients_.begin());
    const std::uint64_t life = node.life;
    Node* n = &node;
    at(micros(50, 1000), [this, n, life, index, payload = std::move(payload)] {
      if (n->life != life) return;  // the connection went with the process
      if (spdlog::should_log(spdlog::level::trace))
        if (auto r = transport::decode_reply(payload, transport::Limits{}))
          spdlog::trace("sim: {} ms: client {} (at op {}) gets {} for request {} from {}", elapsed_ms(), clients_[index].name,
                        clients_[index].next, transport::op_name(r->body), r->id, n->name);
      on_reply(index, payload);
    });
  }

  void on_reply(std::size_t index, const std::string& payload) {
    transport::Limits limits;
    limits.max_frame = 64u << 20;
    auto reply = transport::decode_reply(payload, limits);
    if (!reply) throw Violation{"a member sent a client a reply it cannot read: " + reply.error().message};
    Client& c = clients_[index];
    // A late answer to an op done already still tells something (an ack, a page): checked.
    if (auto* ok = std::get_if<transport::PublishOk>(&reply->body)) return on_published(index, *ok, reply->id);
    if (auto* page = std::get_if<transport::HistoryOk>(&reply->body)) on_page(*page);
    if (reply->id != c.request_id || !c.waiting) return;
    if (auto* error = std::get_if<transport::ErrorReply>(&reply->body)) {
      spdlog::trace("sim: {} ms: client {} op {}: {}", elapsed_ms(), c.name, c.next, error->message);
      if (c.ops[c.next].change() && (error->code == errc::no_change || error->code == errc::message_deleted)) {
        // The rules refused it (reacted already, none to take back, deleted already).
        ++result_.changes_refused;
        return done_op(index);
      }
      if (error->code == errc::unavailable || error->code == errc::no_such_room || error->code == errc::not_member) {
        // unavailable: no primary now, or too few members up. no_such_room and
        // not_member: a replica answering a read, or a member behind the primary.
        c.waiting = false;
        at(std::chrono::milliseconds(uniform(50, 400)), [this, index] { retry(index); });
        return;
      }
      throw Violation{"client " + c.name + " got an error it should not: " + error->message};
    }
    done_op(index);
  }
  void done_op(std::size_t index) {
    Client& c = clients_[index];
    c.waiting = false;
    ++c.next;
    // Ops spread over the time faults come in (some close together, some far apart).
    const auto mean = static_cast<std::uint64_t>(o_.faulty_for.count()) / std::max<std::size_t>(1, c.ops.size());
    at(std::chrono::milliseconds(uniform(1, 2 * mean + 1)), [this, index] { start_op(index); });
  }

  void on_published(std::size_t index, const transport::PublishOk& ok, std::uint64_t id) {
    Client& c = clients_[index];
    // Which publish: the one in flight, or (a late answer) an earlier one of this client.
    const Op* op = nullptr;
    if (id == c.request_id && c.waiting) op = &c.ops[c.next];
    if (op == nullptr) {
      auto found = late_ids_.find(id);
      if (found == late_ids_.end()) return;
      op = &found->second;
    }
    if (ok.seq == 0) throw Violation{"publish " + op->cmid + " acknowledged with seq 0"};
    const auto key = std::pair{op->room, op->cmid};
    auto [it, fresh] = acked_.emplace(key, ok.seq);
    if (!fresh && it->second != ok.seq)
      throw Violation{"publish " + op->cmid + " acknowledged at seq " + std::to_string(it->second) + " and again at " +
                      std::to_string(ok.seq)};
    if (fresh) ++result_.acknowledged;
    last_acked_[op->room] = std::max(last_acked_[op->room], ok.seq);
    if (fresh && op->kind == Op::Kind::publish) {
      messages_acked_[op->room].push_back(ok.seq);
      c.own[op->room].push_back(ok.seq);
    }
    if (fresh && op->change()) {
      ++result_.changes;
      if (op->kind == Op::Kind::remove) deletes_acked_.emplace_back(op->room, op->target);
    }
    if (id == c.request_id && c.waiting) {
      late_ids_.emplace(id, *op);
      done_op(index);
    }
  }

  void on_page(const transport::HistoryOk& page) {
    ++result_.reads;
    for (const auto& m : page.messages) {
      auto [it, fresh] = seen_.emplace(std::pair{m.room, m.seq}, m.client_msg_id);
      if (!fresh && it->second != m.client_msg_id)
        throw Violation{"reads of " + m.room + " showed " + it->second + " and then " + m.client_msg_id + " at seq " +
                        std::to_string(m.seq) + ": a message a read showed was taken back"};
    }
    for (std::size_t i = 1; i < page.messages.size(); ++i)
      if (page.messages[i].seq != page.messages[i - 1].seq + 1)
        throw Violation{"a page of " + page.messages[i].room + " skips from seq " + std::to_string(page.messages[i - 1].seq) +
                        " to " + std::to_string(page.messages[i].seq)};
  }

  // ---- checks as it goes ---------------------------------------------------------------

  /// Every frame a member sends to another: a primary's announcement ('W') is checked.
  void observe(Node& from, const std::string& frame) {
    auto peer = router::decode_peer(frame);
    if (!peer || peer->kind != router::PeerKind::primary) return;
    auto is = router::decode_primary(peer->body);
    if (!is) throw Violation{from.name + " sent an unreadable primary announcement"};
    const std::uint64_t term = peer->corr;
    auto [it, fresh] = primaries_.emplace(term, from.name);
    if (!fresh && it->second != from.name)
      throw Violation{"two primaries in term " + std::to_string(term) + ": " + it->second + " and " + from.name};
    if (term > term_now_) {
      term_now_ = term;
      primary_now_ = from.name;
    }
    if (loss_ && term > loss_->term) {
      // Writable once the new term's first entry is committed.
      refresh_log(from);
      std::uint64_t start = 0;
      for (const auto& [lsn, entry] : from.log)
        if (entry.first == term) {
          start = lsn;
          break;
        }
      if (start > 0 && is->committed >= start) {
        if (loss_->alone)
          result_.failovers.push_back(
            {loss_->kind, static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(now_.steady - loss_->at).count()) / 1000.0});
        loss_.reset();
      }
    }
    if (fresh) {
      if (term > 1) ++result_.elections;
      result_.last_term = std::max(result_.last_term, term);
      if (o_.verbose) note(from.name + " is the primary of term " + std::to_string(term));
    }
    // The primary of a term has every entry committed in that term or before (whatever
    // happened to its store: Raft's leader completeness). A primary of an earlier term
    // that has not heard of the later one yet may well lack them.
    refresh_log(from);
    const std::uint64_t first_kept = from.log.empty() ? from.log_end + 1 : from.log.begin()->first;
    for (const auto& [lsn, entry] : committed_) {
      if (entry.in_term > term || lsn < first_kept) continue;  // trimmed there, or under a copy's position
      auto mine = from.log.find(lsn);
      if (mine == from.log.end() || mine->second != entry.what)
        throw Violation{"entry " + std::to_string(lsn) + " (term " + std::to_string(entry.what.first) +
                        "), committed in term " + std::to_string(entry.in_term) + ", is not in the log of " +
                        from.name + ", primary of term " + std::to_string(term)};
    }
    if (is->committed > committed_upto_) {
      refresh_log(from);
      for (std::uint64_t lsn = committed_upto_ + 1; lsn <= is->committed; ++lsn) {
        auto mine = from.log.find(lsn);
        if (mine == from.log.end()) continue;  // trimmed, or a copy's position with no entries
        auto [c, added] = committed_.emplace(lsn, Committed{mine->second, term});
        if (!added && c->second.what != mine->second)
          throw Violation{"committed entry " + std::to_string(lsn) + " changed"};
      }
      committed_upto_ = is->committed;
    }
  }

  /// Reads a member's log from its store (what it committed) if it may have changed.
  void refresh_log(Node& node) {
    if (!node.log_dirty || !node.reader) return;
    node.log.clear();
    node.log_end = 0;
    std::uint64_t after = 0;
    for (;;) {
      auto read = node.reader->log_after(kShard, after, 4096, 64u << 20);
      if (!read) throw Violation{"cannot read the log of " + node.name + ": " + read.error().message};
      node.log_end = read->end;
      if (read->trimmed && read->kept_from > after + 1) {  // it begins later (trimmed, or a copy's)
        after = read->kept_from - 1;
        continue;
      }
      if (read->entries.empty()) break;
      for (const auto& e : read->entries) node.log[e.lsn] = {e.term, std::hash<std::string>{}(e.body)};
      after = read->entries.back().lsn;
    }
    node.log_dirty = false;
  }

  /// Raft's log matching: two logs with an entry of the same lsn and term agree up to it.
  void check_logs_match() {
    std::vector<Node*> up;
    for (auto& [name, node] : nodes_)
      if (node.up) {
        refresh_log(node);
        up.push_back(&node);
      }
    for (std::size_t i = 0; i < up.size(); ++i)
      for (std::size_t j = i + 1; j < up.size(); ++j) {
        const LogView &a = up[i]->log, &b = up[j]->log;
        // The newest lsn where both have an entry of the same term: everything both have
        // before it must be the same.
        std::uint64_t agree = 0;
        for (auto it = a.rbegin(); it != a.rend(); ++it) {
          auto other = b.find(it->first);
          if (other != b.end() && other->second.first == it->second.first) {
            agree = it->first;
            break;
          }
        }
        for (auto it = a.begin(); it != a.end() && it->first <= agree; ++it) {
          auto other = b.find(it->first);
          if (other != b.end() && other->second != it->second)
            throw Violation{"the logs of " + up[i]->name + " and " + up[j]->name + " differ at lsn " +
                            std::to_string(it->first) + " though they agree at lsn " + std::to_string(agree)};
        }
      }
  }

  void every_second() {
    if (healed_) return;  // from then on, converge_check
    check_logs_match();
    at(1000ms, [this] { every_second(); });
  }

  // ---- the end ---------------------------------------------------------------------

  void converge_check() {
    check_logs_match();
    bool done = std::all_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.next >= c.ops.size(); });
    if (done) {
      // Every member's log ends where the primary's does.
      std::optional<std::uint64_t> end;
      for (auto& [name, node] : nodes_) {
        refresh_log(node);
        const std::uint64_t last = node.log_end;
        if (!end) end = last;
        else if (*end != last) done = false;
      }
    }
    if (done) {
      result_.converged_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now_.steady - heal_at_).count());
      finished_ = true;
      return;
    }
    if (now_.steady - heal_at_ > o_.heal_for) {
      std::string why;
      for (const auto& c : clients_)
        if (c.next < c.ops.size()) why += " client " + c.name + " at op " + std::to_string(c.next) + " of " + std::to_string(c.ops.size()) + ";";
      for (auto& [name, node] : nodes_) why += " " + name + "'s log ends at " + std::to_string(node.log_end) + ";";
      throw Violation{"not converged " + std::to_string(o_.heal_for.count()) + " ms after healing:" + why};
    }
    at(500ms, [this] { converge_check(); });
  }

  void final_checks() {
    check_logs_match();
    for (auto& [name, node] : nodes_) take_down(node);
    // Each member's history, read from its store.
    std::map<std::string, std::map<std::string, std::vector<persistence::StoredMessage>>> histories;
    for (const auto& name : names_) {
      persistence::StoreOptions store_options;
      store_options.dir = nodes_.at(name).dir;
      store_options.durability = persistence::Durability::nosync;
      auto store = persistence::HistoryStore::open(store_options);
      if (!store) throw Violation{"cannot open the store of " + name + ": " + store.error().message};
      for (const auto& room : rooms_) {
        auto& messages = histories[name][room];
        std::uint64_t after = 0;
        for (;;) {
          auto page = store->after(room, after, 1000);
          if (!page) throw Violation{"cannot read " + room + " on " + name + ": " + page.error().message};
          for (auto& m : page->messages) messages.push_back(std::move(m));
          if (!page->more || page->messages.empty()) break;
          after = messages.back().seq;
        }
      }
    }
    const std::string& first = names_.front();
    for (const auto& room : rooms_) {
      const auto& messages = histories[first][room];
      for (const auto& name : names_) {
        const auto& other = histories[name][room];
        if (other.size() != messages.size())
          throw Violation{room + " has " + std::to_string(messages.size()) + " messages on " + first + " and " +
                          std::to_string(other.size()) + " on " + name};
        for (std::size_t i = 0; i < other.size(); ++i)
          if (other[i].seq != messages[i].seq || other[i].client_msg_id != messages[i].client_msg_id ||
              other[i].body != messages[i].body || other[i].entry != messages[i].entry)
            throw Violation{room + " differs between " + first + " and " + name + " at seq " + std::to_string(messages[i].seq)};
      }
      std::set<std::string> once;
      for (std::size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].seq != i + 1) throw Violation{room + ": seq " + std::to_string(messages[i].seq) + " at place " + std::to_string(i + 1)};
        if (!once.insert(messages[i].client_msg_id).second) throw Violation{room + ": " + messages[i].client_msg_id + " stored twice"};
      }
    }
    for (const auto& [key, seq] : acked_) {
      const auto& messages = histories[first][key.first];
      if (seq > messages.size() || messages[seq - 1].client_msg_id != key.second)
        throw Violation{"acknowledged publish " + key.second + " (" + key.first + " seq " + std::to_string(seq) + ") is not in the history"};
    }
    // Each message's state is what its room's entries make of it, on every member: a
    // delete leaves a tombstone, reaction counts are the (user, key) pairs added and not
    // taken back, a root sums up the messages in its thread; and every acknowledged
    // delete is a delete.
    for (const auto& name : names_)
      for (const auto& room : rooms_) {
        const auto& messages = histories[name][room];
        std::map<std::uint64_t, EntryFields> threads;  // root -> its summary as its thread's messages make it
        for (const auto& m : messages) {
          if (m.entry.kind != EntryKind::message || m.entry.thread == 0) continue;
          EntryFields& t = threads[m.entry.thread];
          ++t.replies;
          t.last_reply = m.seq;
          if (t.repliers.size() < kMaxRepliers && std::find(t.repliers.begin(), t.repliers.end(), m.user) == t.repliers.end())
            t.repliers.push_back(m.user);
        }
        for (const auto& m : messages) {
          const EntryFields& want = threads[m.seq];
          if (m.entry.replies != want.replies || m.entry.last_reply != want.last_reply || m.entry.repliers != want.repliers)
            throw Violation{room + " seq " + std::to_string(m.seq) + " on " + name + " sums up " +
                            std::to_string(m.entry.replies) + " replies, its thread holds " +
                            std::to_string(want.replies)};
        }
        std::map<std::uint64_t, std::map<std::string, std::set<std::string>>> reacted;  // target -> key -> users
        std::set<std::uint64_t> deleted;
        for (const auto& m : messages) {
          if (m.entry.kind == EntryKind::remove) deleted.insert(m.entry.target);
          if (m.entry.kind != EntryKind::react) continue;
          auto& users = reacted[m.entry.target][m.entry.key];
          if (m.entry.on) users.insert(m.user);
          else users.erase(m.user);
        }
        for (const auto& m : messages) {
          if (m.entry.kind != EntryKind::message) continue;
          const bool gone = deleted.count(m.seq) > 0;
          std::vector<Reaction> want;
          if (!gone)
            for (const auto& [key, users] : reacted[m.seq])
              if (!users.empty()) want.push_back({key, users.size()});
          if (m.entry.deleted != gone || (gone && !m.body.empty()) || m.entry.reactions != want)
            throw Violation{room + " seq " + std::to_string(m.seq) + " on " + name + " is not as its entries make it: " +
                            (gone ? "deleted" : "not deleted") + " by its entries, " +
                            (m.entry.deleted ? "deleted" : "not deleted") + " as stored, " +
                            std::to_string(m.entry.reactions.size()) + " reaction key(s) stored, " +
                            std::to_string(want.size()) + " made by its entries"};
        }
      }
    for (const auto& [room, target] : deletes_acked_) {
      const auto& messages = histories[first][room];
      if (target > messages.size() || !messages[target - 1].entry.deleted)
        throw Violation{"an acknowledged delete of " + room + " seq " + std::to_string(target) + " is not a delete"};
    }
    for (const auto& [key, cmid] : seen_) {
      const auto& messages = histories[first][key.first];
      if (key.second > messages.size() || messages[key.second - 1].client_msg_id != cmid)
        throw Violation{"a read showed " + cmid + " at " + key.first + " seq " + std::to_string(key.second) + ", which the history does not hold"};
    }
  }

  SimOptions o_;
  std::mt19937_64 rng_;
  Now now_{Clock::time_point{}, kStartWall};
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t next_order_ = 0;
  bool finished_ = false, healed_ = false;
  bool disk_lost_ = false;  ///< a member's data directory was lost in this run
  std::string primary_now_;    ///< the primary of the latest term announced
  std::uint64_t term_now_ = 0;
  /// The primary lost (crashed, paused, cut off), and not yet replaced by a primary of a
  /// later term that can acknowledge writes.
  struct Loss {
    Clock::time_point at;
    std::uint64_t term = 0;
    std::string node, kind;
    bool alone = true;  ///< no other fault came on meanwhile
  };
  std::optional<Loss> loss_;
  int faults_on_ = 0;  ///< faults under way
  Clock::time_point heal_at_{};

  std::vector<std::string> names_, rooms_;
  router::ShardConfig shard_;
  router::PeerOptions peers_;
  std::map<std::string, Node> nodes_;
  std::map<std::pair<std::string, std::string>, Link> links_;
  std::vector<Client> clients_;
  std::uint64_t next_request_ = 1;

  std::map<std::pair<std::string, std::string>, std::uint64_t> acked_;  ///< (room, cmid) -> seq
  std::map<std::uint64_t, Op> late_ids_;                              ///< request id -> the publish it was
  std::map<std::string, std::uint64_t> last_acked_;
  std::map<std::string, std::vector<std::uint64_t>> messages_acked_;  ///< room -> seqs of acknowledged messages
  std::vector<std::pair<std::string, std::uint64_t>> deletes_acked_;  ///< (room, target) of acknowledged deletes
  std::map<std::pair<std::string, std::uint64_t>, std::string> seen_;  ///< (room, seq) -> cmid a read showed
  std::map<std::uint64_t, std::string> primaries_;                    ///< term -> its primary
  struct Committed {
    std::pair<std::uint64_t, std::size_t> what;  ///< the entry's term and its body's hash
    std::uint64_t in_term = 0;                   ///< the term of the primary that said it is committed
  };
  std::map<std::uint64_t, Committed> committed_;  ///< by lsn
  std::uint64_t committed_upto_ = 0;
  std::vector<std::string> schedule_;
  SimResult result_;
};

}  // namespace

SimResult simulate(const SimOptions& options) {
  World world(options);
  return world.run();
}

}  // namespace switchboard::sim
