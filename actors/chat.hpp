// The chat actor: owns a shard of the rooms.
//
// It validates a request, gives each publish its room's next seq (gapless, per room),
// hands the batch to persistence, and only once persistence says the batch is durable
// does it publish the messages (topic = room) and acknowledge the senders. Room
// creation, join and leave take the same path, so a reply always means "stored".
//
// Up to two batches are at persistence at a time; whatever arrives meanwhile waits
// and goes in the next batch (group commit). If a batch fails, nothing of it was
// stored, and persistence refuses the batch sent on top of it too: chat rolls back
// the seqs and membership changes of every batch in flight, newest first, and every
// sender gets an error it may retry. Seqs stay gapless.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "switchboard/actors/actor.hpp"
#include "switchboard/actors/chat/batch_pipeline.hpp"
#include "switchboard/actors/chat/entry_rules.hpp"
#include "switchboard/actors/chat/dedup_table.hpp"
#include "switchboard/actors/chat/room_heads.hpp"
#include "switchboard/actors/chat/room_book.hpp"
#include "switchboard/actors/chat/trimmer.hpp"
#include "switchboard/actors/membership.hpp"
#include "switchboard/actors/store_protocol.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/router/peers.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

struct ChatMetrics;  // actors/metrics.hpp

/// A node of several: which rooms are this node's, and who the others are.
struct ChatCluster {
  std::string self;                         ///< this node's name
  std::vector<router::ShardConfig> shards;  ///< every shard of the topology and its owner
  std::vector<std::string> others;          ///< the other nodes
  router::PeerOptions peers;
};

/// The runtime names of a chat's links to another node: the DEALER to its peer
/// ROUTER, and the SUB on its PUB.
std::string peer_actor(const std::string& node);
/// The runtime name of a chat's link to a service (actors/service.hpp).
std::string service_actor(const std::string& service);

/// A service that chat asks about every publish before it is stored (a moderation
/// bot): it answers accept or refuse (with a reason, sent to the publisher as
/// `refused`). Publishes, and whatever the same caller sends after them, keep their
/// order while they wait.
struct PublishHook {
  std::string service;
  std::chrono::milliseconds timeout{1000};
  bool fail_open = false;  ///< no verdict in time: accept (true) or answer `unavailable`
};
inline const std::string& peer_feed(const std::string& node) { return node; }

struct ChatOptions {
  std::string node_name = "switchboard";
  std::string persistence_actor = "persistence";
  /// Where history reads go: a history reader beside persistence (actors/history_reader.hpp),
  /// so that a read does not wait for a commit. Empty: to persistence.
  std::string reader_actor;
  /// The presence actor told of every durable membership change ("" for none).
  std::string presence_actor;
  /// The node's webhook sender (actors/webhook/webhook_sender.hpp), told of every room's
  /// newest durable seq after each batch; its cursor and backlog frames come on chat's
  /// internal mailbox ("" for none: no webhooks).
  std::string webhook_actor;
  /// Whether room changes write membership and room events to their room's events log
  /// (common/event_rooms.hpp): a webhook takes them.
  bool room_events = false;
  /// What hello announces for presence (the presence actor's bound endpoints).
  std::vector<std::string> presence_endpoints, presence_pub_endpoints;
  transport::Limits limits;
  std::size_t max_batch_records = 4096;          ///< records in one group commit
  std::size_t max_batch_bytes = 8 * 1024 * 1024;  ///< body bytes in one group commit
  /// Batches at persistence at once: with 2, chat forms and answers one batch while
  /// persistence commits the other (see bench/switchboard_bench.cpp).
  std::size_t max_batches_in_flight = 2;
  /// Several nodes: requests for rooms owned elsewhere are forwarded to the owner,
  /// and subscribers here get those rooms' messages through this node's XPUB.
  std::optional<ChatCluster> cluster;
  std::optional<PublishHook> hook;
  /// The services clients may `call` through this node, and how long each may take
  /// to answer (the topology's [services.NAME]); each is linked as service_actor(name).
  std::map<std::string, std::chrono::milliseconds> services;
  /// Where chat counts what it does (actors/metrics.hpp); none: nothing is counted.
  /// Used on chat's thread only; must outlive the actor.
  ChatMetrics* metrics = nullptr;
  /// Service grants by the User-Id of their keys' connections (CurveSetup::grants): a
  /// request from such a connection is checked against its grant (actors/grants.hpp).
  std::map<std::string, router::Grant, std::less<>> grants;
  /// Heads events on the PUB (actors/chat/room_heads.hpp): one per interval in which
  /// rooms published, an empty one after `heads_keepalive` without.
  std::chrono::milliseconds heads_interval{250}, heads_keepalive{1000};
  /// How often rooms are looked at for retention (actors/chat/trimmer.hpp).
  std::chrono::milliseconds retention_interval{1000};
  /// Where chat's random numbers (election waits, request numbers) come from: unset, the
  /// system's entropy; set, this seed, so that a run is a function of its inputs (the
  /// deterministic simulator, tests/sim/).
  std::optional<std::uint32_t> seed;
};

/// Counters for tests and stats.
struct ChatStats {
  std::uint64_t batches = 0;
  std::uint64_t published = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::uint64_t batch_failures = 0;
  std::uint64_t forwarded = 0;         ///< requests sent to the room's owner
  std::uint64_t forward_failures = 0;  ///< answered `unavailable` for want of the owner
  std::uint64_t relayed = 0;           ///< messages of other nodes' rooms published here
  std::uint64_t hook_refused = 0;      ///< publishes the hook refused
  std::uint64_t calls = 0;             ///< `call`s sent to services
  std::uint64_t call_failures = 0;     ///< answered `unavailable` for want of the service
  std::uint64_t shipped = 0;           ///< log entries sent to replicas (resent ones too)
  std::uint64_t replicated = 0;        ///< log entries applied here as a replica
  std::uint64_t elections = 0;         ///< elections this node stood in
  std::uint64_t promotions = 0;        ///< times this node became a shard's primary by election
  std::uint64_t step_downs = 0;        ///< times it stopped being a shard's primary
  std::uint64_t reconciled = 0;        ///< messages of diverged log tails taken out of history here
  std::uint64_t copies_sent = 0;       ///< copies of the store sent whole to a replica
  std::uint64_t copies_installed = 0;  ///< copies of a primary's store installed here
};

class Chat final : public Actor {
 public:
  /// `snapshot` is what persistence holds at startup; `now` dates the dedup window.
  Chat(ChatOptions options, const persistence::Snapshot& snapshot);

  void on_start(const std::vector<std::string>& mailbox, const std::vector<std::string>& publish, const Now& now,
                Effects& out) override;
  void on_message(const Inbound& in, const Now& now, Effects& out) override;
  /// History and last_seq requests pass the publishes read with them.
  bool ahead(const Inbound& in) const override;
  void on_drained(const Now& now, Effects& out) override;
  void on_stop(const Now& now, Effects& out) override;
  bool idle() const override;

  void on_timer(std::uint64_t id, const Now& now, Effects& out) override;

  const ChatStats& stats() const noexcept { return stats_; }
  /// Several nodes: whether each other node is up (its breaker closed).
  std::map<std::string, bool> peer_states() const;

 private:
  using Room = RoomBook::Room;
  using Undo = RoomBook::Undo;
  struct Caller {
    std::string peer;
    std::uint64_t request_id = 0;
    bool node = false;       ///< came from another node, on the node mailbox
    std::uint64_t corr = 0;  ///< node callers: the forwarding node's number for it
    SteadyClock::time_point received{};  ///< when chat read the request
  };
  /// A publish on its way to being stored: its claim in the retry window (dedup_),
  /// settled with its seq once it is stored, dropped if it will not be.
  using PubClaim = DedupTable::Claim;
  static constexpr PubClaim kNoClaim = ~PubClaim{0};
  /// An item of a publish_batch: the publish it made (`fresh`), or kNoClaim for one that
  /// repeats a publish stored or on its way (found again when the frame is answered).
  struct BatchItem {
    PubClaim fresh = kNoClaim;
  };
  /// A request waiting for the next batch, then for its batch to be durable.
  struct Pending {
    Caller caller;
    transport::RequestBody request;
    PubClaim publication = kNoClaim;  ///< publishes only
    transport::ReplyBody reply;
    std::string event;  ///< publishes: the message frame to publish once durable
    std::optional<std::string> as = std::nullopt;  ///< the request's `as`
    /// Membership changes presence is told of once the op is durable.
    std::vector<MembershipChange> presence = {};
    bool answered = false;  ///< answered already (its shard changed primary): nothing more to do
    /// publish_batch: its items, in order, and the message frames of the fresh ones
    /// (published once durable); `reply` holds their seqs (PublishBatchOk).
    std::vector<BatchItem> items = {};
    std::vector<std::string> events = {};
    /// publish, publish_batch: the start of the newest message's body (its body goes to
    /// the store's record), for the room's summary once durable.
    std::string preview = {};
    /// trim_history: the messages it removes (its room's first seq moved by as many).
    std::uint64_t trimmed = 0;
    /// A room change: the seq of the last event it wrote to its room's events log (0: none).
    std::uint64_t room_event = 0;
    /// An edit, delete or react: its target as persistence found it, and the mark of that
    /// lookup in rules_ (held until the op is checked, or fails); a message in a thread or
    /// answering another: what it names (EntryRules::looked_up), the second in `also`.
    std::optional<persistence::TargetState> target = std::nullopt;
    persistence::TargetState also = {};
    std::optional<std::uint64_t> mark = std::nullopt;
  };
  /// What a batch carries besides its requests: how to take its changes back, and its
  /// place in the shards' replication logs.
  struct BatchExtra {
    std::vector<Undo> undo;
    /// The replication log entries it made: (shard, lsn); answered only once each is
    /// on enough replicas (shards with ack = replicated).
    std::vector<std::pair<std::string, std::uint64_t>> log = {};
    std::vector<persistence::LogEntry> entries = {};  ///< shipped once durable here
  };
  using Pipeline = BatchPipeline<Pending, BatchExtra>;
  using Batch = Pipeline::Batch;

  static constexpr std::uint64_t kHeartbeatTimer = 1, kCheckTimer = 2, kCallTimer = 3, kHeadsTimer = 4,
                                 kRetentionTimer = 5, kTrimTimer = 6, kBlankTimer = 7;

  /// `grant`: the grant of the connection it came on (none: every right).
  void on_request(Caller caller, std::string_view frame, const Now& now, Effects& out,
                  const router::Grant* grant = nullptr);
  /// Sends a ready reply frame to a caller (wrapped for a node caller).
  void send_frame(Effects& out, const Caller& to, std::string frame);

  // Several nodes (chat_forwarding.cpp).
  struct Forward {
    Caller caller;
    std::string node;
    std::uint64_t gather = 0;  ///< part of a room list gathered from every node
  };
  using Forwards = std::unordered_map<std::uint64_t, Forward>;
  /// A room list: this node's rooms, then every other node's.
  struct Gather {
    Caller caller;
    bool shards = false;  ///< a shard list (else a room list)
    std::map<std::string, transport::ShardsOk> reports = {};  ///< shard lists, by node
    std::set<std::string> rooms;
    /// A user's rooms: each room's summary, the furthest one a node gave (a replica may
    /// be behind its primary).
    std::map<std::string, transport::RoomSummary> summaries = {};
    std::vector<std::string> missing;
    /// The shards whose rooms a node that answered left out (it cannot yet say what is
    /// committed there: Chat::vouches_for), by shard.
    std::map<std::string, std::vector<std::string>> withheld = {};
    std::size_t waiting = 0;
    transport::ListRooms request = {};  ///< its paging of summaries
    bool summarized = false;            ///< summaries asked for (and allowed)
    bool more = false;                  ///< a node had more summaries past its page
  };
  /// The room a request is about (every op on a room), or nullptr.
  static const std::string* room_of(const transport::RequestBody& request);
  /// history, last_seq, members: the requests that only read a room.
  static bool reads_room(const transport::RequestBody& request);
  /// The node a request must go to (the primary of its room's shard), or nullptr when
  /// it is for this node (or names no room). An empty name: the shard has no primary now.
  const std::string* owner_elsewhere(const transport::RequestBody& request) const;
  void forward(const std::string& node, const Caller& caller, std::string_view frame, std::uint64_t gather,
               const Now& now, Effects& out);
  void gather_rooms(const Caller& caller, const transport::ListRooms& request, const std::optional<std::string>& as,
                    std::string_view frame, const Now& now, Effects& out);
  void gathered(std::uint64_t gather, const std::string& node, const transport::ReplyBody* body, Effects& out);
  /// Adds one node's room list to a gather.
  static void gathered(Gather& g, const std::string& node, const transport::RoomsOk& ok);
  /// Every node answered (or failed): the gather's reply, and it is forgotten.
  void finish_gather(std::unordered_map<std::uint64_t, Gather>::iterator it, Effects& out);
  /// Starts gather `id` on every other node (or ends it at once if there is none).
  void ask_every_node(std::uint64_t id, std::string_view frame, const Now& now, Effects& out);
  void fail_forward(std::uint64_t corr, const std::string& why, Effects& out);
  void forget_forward(Forwards::iterator it);
  void fail_forwards_to(const std::string& node, const std::string& why, Effects& out);
  void on_node_message(const Inbound& in, const Now& now, Effects& out);
  /// The connection to another node dropped (its process died, or it closed it).
  void on_peer_gone(const std::string& node, Effects& out);
  void on_peer_reply(const std::string& node, std::string_view frame, const Now& now, Effects& out);
  /// A frame to `node` could not go out: no connection (it is down), or `queue_full`
  /// (it is up but not keeping up: only that request fails).
  void on_undeliverable(const std::string& node, std::string_view frame, bool queue_full, Effects& out);
  void on_feed(const std::string& node, const Inbound& in, Effects& out);
  void on_subscription(std::string_view frame, Effects& out);
  void heartbeat(const Now& now, Effects& out);

  // Replication (chat_replication.cpp).
  /// A message stored here that reads do not show yet: its entry (`lsn`) is not known
  /// to be committed (it could still be taken back).
  struct Unseen {
    std::uint64_t lsn = 0;
    std::string room;
    std::uint64_t seq = 0;
  };
  /// A shard this node is the primary of, with replicas.
  struct PrimaryLog {
    const router::ShardConfig* config = nullptr;
    std::size_t needed = 0;  ///< replicas an acknowledgement needs (ack = replicated)
    std::uint64_t term = 1;
    std::uint64_t last_lsn = 0;     ///< given out (maybe not durable yet)
    std::uint64_t durable_lsn = 0;  ///< durable here
    /// The log's end when this process started, or its term's first entry when it was
    /// elected: what was stored before may not be on a majority (or, from an earlier
    /// term, not be the shard's for good), so retries of it wait until enough replicas
    /// have this far.
    std::uint64_t at_start = 0;
    struct Follower {
      std::uint64_t acked = 0;  ///< durable there, as it said
      std::uint64_t sent = 0;   ///< sent to it, in order, since it last said where it was
      std::uint64_t acked_at_tick = 0;  ///< `acked` at the last heartbeat: no progress, resend
      bool reading = false;     ///< a log read for it is at persistence
      bool reported = false;    ///< it said where it is since this node became (or restarted as) the primary
      bool diverged = false;    ///< told to take back its log's end ('D'); nothing is sent until it has
      bool copying = false;     ///< a copy of the store is on its way to it: no entries until it is installed
      std::uint64_t no_copy_until = 0;  ///< no new copy for it before this heartbeat (one just went)
    };
    std::map<std::string, Follower> followers;
    std::uint64_t trimmed = 0;  ///< entries up to this are trimmed (every replica has them)
    /// Entries up to this are the shard's for good: on a majority, with one of this
    /// term (Raft's commit rule); shards that do not fail over: durable here.
    std::uint64_t committed = 0;
    std::deque<Unseen> unseen = {};  ///< messages of earlier terms' entries, shown once committed
    /// It restarted as the primary (of a shard that fails over): what it stored before
    /// may be a tail no majority had, which a failover it has not heard of yet may have
    /// taken back, so it serves no reads of the shard until `committed` reaches `at_start`.
    bool restarted = false;
    /// Whether what it shows of the shard is known to be committed (not `restarted`, or
    /// its term's first entry committed since): it serves reads and lists the rooms.
    bool known_committed() const { return !restarted || committed >= at_start; }
  };
  /// A shard this node is a replica of.
  struct ReplicaLog {
    std::string primary;
    std::uint64_t received = 0;  ///< handed to persistence
    std::uint64_t durable = 0;   ///< stored here
    std::uint64_t gap_asked = ~std::uint64_t{0};  ///< `received` when it last asked for a gap
    std::uint64_t trimmed = 0;  ///< its own copy of the log is trimmed up to here
    std::uint64_t mismatch_logged = 0;  ///< the last entry logged as not following its log
    std::uint64_t committed = 0;        ///< as far as its primary said its log is committed ('W')
    /// Its log is known to be the primary's up to here: an entry of it was taken since
    /// this node followed it (a commit point says nothing of a diverged tail).
    std::uint64_t matched = 0;
    std::deque<Unseen> unseen = {};     ///< messages past `committed` (shards that fail over)
    /// Its log's end when this process started (shards that fail over): which of those
    /// entries are committed was not kept, so it serves no reads itself (its primary
    /// away) until its primary says it has committed this far.
    std::uint64_t restart_lsn = 0;
    /// Whether its primary has said its log is committed as far as `restart_lsn`: what it
    /// shows of the shard may be shown (reads while its primary is away, room lists).
    bool known_committed() const { return std::min(committed, matched) >= restart_lsn; }
  };
  /// This node's standing in a replicated shard it is a member of (primary or replica).
  struct Seat {
    const router::ShardConfig* config = nullptr;
    std::uint64_t term = 0;      ///< the term this node is in (stored, as a ShardVote)
    std::string voted_for;       ///< in `term`
    std::vector<persistence::TermStart> terms;  ///< the log's terms and where each starts
    enum class Stage { none, pre_vote, vote } stage = Stage::none;
    std::set<std::string> granted;  ///< members for this node in the election under way
    unsigned countdown = 0;  ///< heartbeats until this node stands, or gives up an election
    bool truncating = false;  ///< a diverged tail is being taken back
    bool stuck = false;       ///< a diverged tail could not be taken back: the shard is held
    /// Nothing of the shard is here (a new member, or one that lost its data directory):
    /// it takes no writes and no entries, neither stands nor votes, and says so ('K' in
    /// term 0) to every member, which answer with where their logs end. An owner that is
    /// blank starts term 1 once a majority of the members say they are blank too (a new
    /// shard). Otherwise it follows a primary once it has heard from enough members to
    /// know the latest term (any quorum of an acknowledgement includes one of them), and
    /// a primary of that term or later announces a commit point (or none of them has an
    /// entry at all).
    bool blank = false;
    /// A blank seat: each member heard from, with its term and its log's last lsn.
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> heard;
    /// Back from blank, it learns until its log is durable up to here (the commit point of
    /// the primary it followed): it takes entries and copies, and neither votes nor stands
    /// (Raft's learners). 0: a voting member.
    std::uint64_t learner_until = 0;
    /// The primary this node follows said it is blank (it lost its data): it is counted as
    /// gone, so an election follows.
    bool primary_blank = false;
  };
  /// Where a shard's writes go: its primary, as this node knows it, and since what term.
  struct Route {
    std::uint64_t term = 0;
    std::string primary;  ///< "": none known (an election is on)
  };
  /// What a store write this node sent for replication is, to act on once it is stored.
  struct Apply {
    enum class Kind { entry, term_entry, vote } kind = Kind::entry;
    std::string shard;
    std::uint64_t lsn = 0;                     ///< entry, term_entry
    std::vector<persistence::Record> records;  ///< entry: kept to update the view
    std::string candidate;                     ///< vote: the one voted for (this node: its own)
    std::uint64_t term = 0;                    ///< vote
  };
  static constexpr std::uint64_t kApplyBatch = std::uint64_t{1} << 63;  ///< persistence ids of replica applies
  /// Appends this batch's log entries (one per replicated shard it touches) to `records`,
  /// and notes where ops that wrote nothing must wait for replicas.
  void log_batch(std::vector<persistence::Record>& records, Batch& batch);
  void log_records(std::vector<persistence::Record>& records, Batch& batch);
  /// A batch is durable here: ship its entries and answer what is replicated enough.
  void on_durable(Batch batch, const Now& now, Effects& out);
  void release_replicated(const Now& now, Effects& out);
  /// The primary's commit point moves on as replicas confirm; true if it did.
  bool update_commit(PrimaryLog& log);
  /// Reads show the messages of `unseen` entries up to `committed`.
  void show_committed(std::deque<Unseen>& unseen, std::uint64_t committed);
  bool replicated_enough(const Batch& batch) const;
  /// Why a retry of a publish stored before this process started cannot be acknowledged
  /// yet (too few replicas have confirmed the log as it was at start), or nullopt.
  std::optional<std::string> unconfirmed_since_start(const std::string& room) const;
  /// How many of the shard's replicas have its log up to `lsn`.
  static std::size_t confirmed(const PrimaryLog& log, std::uint64_t lsn);
  /// Why a write to `room` cannot be acknowledged now (too few replicas up), or nullopt.
  std::optional<std::string> replicas_missing(const std::string& room) const;
  void ship(const std::string& replica, const persistence::LogEntry& entry, Effects& out);
  void catch_up(const std::string& shard, const std::string& replica, std::uint64_t after, Effects& out);
  void on_log_page(const store::LogPage& page, Effects& out);
  /// Every replication and failover frame, from either link ('L', 'K', 'G', 'D', 'V', 'Y', 'W').
  void on_replication(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out);
  /// 'K' and 'G' from a replica.
  void on_replica_report(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out);
  /// 'L' from a primary.
  void on_log_entry(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out);
  void on_applied(std::uint64_t id, const Error& error, const Now& now, Effects& out);

  // Catching up from a copy of the primary's store (chat_copy.cpp).
  /// A copy of this node's store on its way to a replica of a shard it is the primary of.
  struct CopyOut {
    std::uint64_t id = 0;    ///< its number (on the wire, and persistence's name for it)
    std::uint64_t size = 0;  ///< bytes (0: being made)
    std::uint64_t sent = 0, acked = 0, acked_at_tick = 0;
    bool reading = false;  ///< a chunk read is at persistence
  };
  /// A copy coming in from a shard's primary.
  struct CopyIn {
    std::string from;
    std::uint64_t id = 0, size = 0;
    std::uint64_t received = 0;  ///< handed to persistence
    std::uint64_t written = 0;   ///< written there
    bool installing = false;
  };
  static constexpr std::uint64_t kCopyChunk = 256 * 1024;  ///< bytes in one 'S'
  static constexpr std::uint64_t kCopyWindow = 8;          ///< chunks sent and not yet acknowledged
  /// Starts sending a copy of the store to `replica` (its log is behind what this
  /// node's log keeps, or it asked).
  void send_copy(const std::string& shard, const std::string& replica, Effects& out);
  void pump_copy(const std::string& shard, const std::string& replica, CopyOut& copy, Effects& out);
  /// Ends the copy to `replica` (sent, or no longer wanted) and deletes it.
  void end_copy(const std::string& shard, const std::string& replica, Effects& out);
  /// Every copy of `shard` going out: this node stopped being its primary.
  void end_copies(const std::string& shard, Effects& out);
  void on_copy_request(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_chunk(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_had(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_copy_done(store::CopyDone& done, const Now& now, Effects& out);
  /// An installed copy: the shard's rooms, retry window, terms and log position here.
  void installed(const std::string& shard, store::CopyDone& done, Effects& out);
  void copy_tick(Effects& out);

  // Failover (chat_failover.cpp).
  static bool fails_over(const router::ShardConfig& shard);
  static std::size_t majority(const router::ShardConfig& shard) { return (shard.replicas.size() + 1) / 2 + 1; }
  /// The members of a shard other than this node.
  std::vector<std::string> other_members(const router::ShardConfig& shard) const;
  /// This node's seat in `shard` if `node` is another member of it (else nullptr: what
  /// `node` sent about the shard is not its to send).
  Seat* seat_shared_with(const std::string& shard, const std::string& node);
  /// Sets up seats_, routes_ and the logs from what the store holds.
  void start_replication(const persistence::Snapshot& snapshot);
  const std::string& primary_of_shard(const std::string& shard) const;
  /// Whether this node takes writes for `room` now (its shard's primary, or one node).
  bool primary_here(const std::string& room) const;
  void set_route(const std::string& shard, std::uint64_t term, const std::string& primary, Effects& out);
  /// Forgets the terms that begin past `lsn` (entries after it were not stored, or taken back).
  static void drop_terms_after(Seat& seat, std::uint64_t lsn);
  /// The term of this node's log entry `lsn` of the shard (0: none).
  static std::uint64_t term_at(const Seat& seat, std::uint64_t lsn);
  /// A follower says its log ends at (term, lsn): nullopt if that agrees with this
  /// primary's log, else the lsn it must drop its entries after.
  std::optional<std::uint64_t> diverges(const std::string& shard, std::uint64_t lsn, std::uint64_t term) const;
  void send_kept(const std::string& shard, Effects& out);
  /// 'K' with where this node's copy of the shard's log ends, and the term it is in.
  std::string kept_frame(const std::string& shard) const;
  /// 'W': this node is the primary of `shard` in `log`'s term, its log trimmed and
  /// committed where `log` says.
  std::string primary_frame(const std::string& shard, const PrimaryLog& log) const;
  void store_vote(const std::string& shard, const std::string& answer_to, Effects& out);
  /// Opens this node's log of a shard it is the primary of, from `lsn` in `term`.
  PrimaryLog& open_primary_log(const std::string& shard, Seat& seat, std::uint64_t lsn);
  /// A blank seat's report to every other member of its shard (each heartbeat, and every
  /// kBlankTimer until no seat is blank).
  void tell_blank(Effects& out);
  /// When a blank seat says so next: often (a twentieth of a heartbeat, at least 10 ms).
  SteadyClock::time_point next_blank_report(SteadyClock::time_point now) const;
  /// `node` says it has nothing of `shard` ('K' in term 0).
  void on_blank_report(const std::string& node, const std::string& shard, Effects& out);
  /// A blank seat heard from `node` (its term and last lsn; 0, 0: blank too).
  void heard_while_blank(const std::string& node, const std::string& shard, std::uint64_t term, std::uint64_t lsn,
                         Effects& out);
  /// Whether a blank seat may follow the primary of `term` (see Seat::blank).
  bool may_follow_from_blank(const Seat& seat, std::uint64_t term) const;
  /// None of the members a blank seat heard from has an entry of the shard.
  static bool nothing_anywhere(const Seat& seat);
  /// Seat::learner_until of a learner whose primary has not announced a commit point yet.
  static constexpr std::uint64_t kLearnsUntilCommitted = ~std::uint64_t{0};
  /// A blank owner heard a majority of blank members: the shard is new, and starts.
  void bootstrap(const std::string& shard, Effects& out);
  /// A learner whose log reached `learner_until` votes again.
  void learned(const std::string& shard, Effects& out);
  /// Whether the primary `seat`'s node follows is there (up, and not blank).
  bool primary_alive(const std::string& shard, const Seat& seat) const;
  void election_tick(Effects& out);
  void stand(const std::string& shard, Seat& seat, bool pre, Effects& out);
  void become_primary(const std::string& shard, Effects& out);
  /// Stops being (or following) the shard's primary: `primary` is in `term` now.
  /// `store`: store the new standing now (else the caller writes it with what it stores).
  void follow(const std::string& shard, std::uint64_t term, const std::string& primary, const Now& now, Effects& out,
              bool store = true);
  /// The messages of a batch's entry in `shard` (stored, not acknowledged), to `unseen`.
  void note_unseen(const Batch& batch, const std::string& shard, std::deque<Unseen>& unseen);
  /// A batch's part in a shard this node is no longer the primary of: answered `unavailable`.
  void drop_shard_ops(Batch& batch, const std::string& shard, Effects& out);
  void on_vote_request(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_vote(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_primary(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out);
  void on_diverged(const std::string& node, const router::PeerFrame& frame, Effects& out);
  void on_truncated(const store::Truncated& done, Effects& out);
  /// Forgets a stored publish the retry window remembers with `seq` (taken back).
  void forget_publication(const std::string& room, const std::string& user, const std::string& client_msg_id,
                          std::uint64_t seq);
  /// Keeps the room book as the replicated shard's records say (for reads while the primary is away).
  void apply_replicated(const std::vector<persistence::Record>& records);
  void ask_for_gap(const std::string& shard, ReplicaLog& log, Effects& out);
  void replication_tick(const Now& now, Effects& out);
  /// Why this node, the primary of `room`'s shard, cannot serve reads of it yet (it
  /// restarted, and its replicas have not confirmed its log), or nullopt.
  std::optional<std::string> reads_wait(const std::string& room) const;
  /// Whether this node can say what is committed in `room`'s shard: not while its log
  /// there may end in a tail an election takes back (it restarted, or installed a copy,
  /// and has not heard since that its log is committed that far). Its room list and
  /// summaries leave such a shard's rooms out, as if it had not answered for them.
  bool vouches_for(const std::string& room) const;
  /// This node's own answer to `rooms`: the rooms and summaries of its book that it
  /// vouches for; the shards it leaves out in `missing_shards`.
  transport::RoomsOk local_rooms(const transport::ListRooms& request, const std::optional<std::string>& as) const;
  /// A replica serves reads of `request` itself while its primary is down.
  bool read_here(const transport::RequestBody& request, const std::string& owner) const;
  const std::string* shard_of(std::string_view room) const;
  /// `shards`: this node's own view (for another node), and every node's views merged.
  transport::ShardsOk local_shards() const;
  transport::ShardsOk merge_shards(const std::map<std::string, transport::ShardsOk>& reports,
                                   std::vector<std::string> missing) const;
  void gather_shards(const Caller& caller, std::string_view frame, const Now& now, Effects& out);
  /// The room a request changes (a publish, a room or membership change), or nullptr.
  static const std::string* written_room(const transport::RequestBody& request);

  // The publish hook (chat_hook.cpp).
  struct Check {
    std::uint64_t corr = 0;  ///< 0: not sent to the hook (it only keeps its place in line)
    Pending op;
    SteadyClock::time_point deadline;
    enum class Verdict { waiting, accept, refuse, no_answer } verdict = Verdict::waiting;
    std::string reason;
    /// An edit, delete or react: the corr of the lookup of its target at persistence (0:
    /// answered, or none), and why the lookup failed.
    std::uint64_t lookup = 0;
    std::optional<Error> lookup_error = std::nullopt;
  };
  /// Queues `op`, through the hook's line if there is one.
  void enqueue(Pending op, std::string_view frame, const Now& now, Effects& out);
  void on_hook_message(const router::PeerFrame& frame, bool undeliverable, const Now& now, Effects& out);
  /// Persistence found what the publishes in line name (each item: the lookup `corr`).
  void on_looked(store::Looked& looked, Effects& out);
  /// Sends the lookups of this read round (lookups_) to persistence, all in one.
  void send_lookups(Effects& out);
  /// Releases the mark of `op`'s lookup in rules_ (if it holds one); returns it (0: none).
  std::uint64_t release_mark(Pending& op);
  /// Checks what publish `p` names, if anything (an edit's, delete's or reaction's
  /// target; a message's thread root and the message it answers: EntryRules), with its
  /// lookup's `mark`: true if it may be stored; false if the rules refuse it (the refusal
  /// is left in op.reply, answered with its batch: it waits, as a write that changes
  /// nothing does, until the node's log is known to be the shard's); an error to fail it
  /// with at once.
  Result<bool> check_named(Pending& op, const transport::Publish& p, const Room& room, std::uint64_t mark,
                           const Now& now);

  // Calls to services (chat_calls.cpp).
  struct ServiceCall {
    Caller caller;
    std::string service;
    SteadyClock::time_point deadline;
  };
  void call_service(const Caller& caller, const transport::Call& call, std::string_view frame, const Now& now,
                    Effects& out);
  /// What came from service `service`: a verdict, a call's answer, or (undeliverable)
  /// a message that could not go to it.
  void on_service_message(const std::string& service, std::string_view frame, bool undeliverable, const Now& now,
                          Effects& out);
  /// Removes a call from the calls in flight and from the deadline line; returns it.
  ServiceCall take_call(std::unordered_map<std::uint64_t, ServiceCall>::iterator it);
  void fail_call(std::uint64_t corr, const std::string& why, Effects& out);
  void expire_calls(const Now& now, Effects& out);
  void on_verdict(std::uint64_t corr, Check::Verdict verdict, std::string reason, const Now& now, Effects& out);
  void release_checked(Effects& out);
  void expire_checks(const Now& now, Effects& out);
  void on_store_reply(std::string_view frame, const Now& now, Effects& out);
  void flush(const Now& now, Effects& out);
  void can_flush(const Now& now, Effects& out);
  void notify_presence(const Pending& op, Effects& out);
  /// A frame of the webhook sender (actors/webhook/webhook_frames.hpp).
  void on_webhook_frame(std::string_view frame, Effects& out);
  /// Whether chat writes `room` here: no cluster, or its shard's primary is this node.
  bool writes_here(std::string_view room) const;
  void finish_batch(Batch& batch, const Now& now, Effects& out);
  void roll_back_in_flight(const Error& error, Effects& out);
  void expire_dedup(const Now& now);
  void reply(Effects& out, const Caller& to, transport::ReplyBody body);
  /// A publish on its way will not be stored: its retries get `code`, and it is forgotten.
  void fail_publication(Effects& out, PubClaim publication, errc code, const std::string& message);
  /// Answers an op that will not be stored with `code`: its caller, and whoever waits on
  /// the publishes it made (which are forgotten).
  void fail_op(Effects& out, Pending& op, errc code, const std::string& message);
  /// A publish_batch is durable: its messages go out, and its reply is made.
  void finish_publish_batch(Pending& op, const Now& now, Effects& out);
  void reply_error(Effects& out, const Caller& to, errc code, std::string message);

  ChatOptions options_;
  EntryRules rules_{options_.limits};  ///< edits, deletes, reactions (chat/entry_rules.hpp)
  std::vector<std::string> pub_endpoints_;
  RoomBook book_;
  RoomHeads heads_;
  /// Retention (chat_retention.cpp): each room's next step, and the scans asked.
  Trimmer trimmer_{RoomBook::kMaxTrim};
  std::unordered_map<std::uint64_t, std::string> age_scans_;  ///< corr -> room
  /// Rooms whose next trim step waits while publishes are going on, and when it may go.
  std::deque<std::pair<SteadyClock::time_point, std::string>> trims_waiting_;
  bool trim_timer_armed_ = false;
  SteadyClock::time_point last_request_{};  ///< when a client's request was last queued for a batch
  /// How each trimmed room's steps are paced: how fast messages come in, and its steps
  /// on their way.
  struct TrimPace {
    /// Where the room's durable seq stood at `at`: the start of the window over which
    /// its fill rate is measured next (at least kFillWindow long, so that a burst of a
    /// pipelined publisher, or a short gap between two, does not pass for its rate).
    SteadyClock::time_point at{};
    std::uint64_t durable_seq = 0;
    /// The time the room took to gain half a step's worth of messages over the last
    /// window; zero: not known yet, or it gained none.
    SteadyClock::duration fills{};
    /// Steps to queue at once next: 1, or, for a room that fills faster than one step
    /// at a time trims it (a step takes longer from queued to stored than the room
    /// takes to gain half a step), one more for each such half step the step took, at
    /// most kMaxTrimSteps.
    int steps = 1;
    int in_flight = 0;  ///< chat's own trim steps of the room queued and not yet answered
  };
  static constexpr int kMaxTrimSteps = 8;
  static constexpr std::chrono::milliseconds kFillWindow{200};
  std::unordered_map<std::string, TrimPace> trim_pace_;
  void next_trim_steps(const Now& now, Effects& out);
  void retention_tick(const Now& now, Effects& out);
  /// Plans `room`'s next retention step and takes it (a scan sent, a trim queued).
  /// `found`: the room, when the caller has it in hand (else it is looked up).
  void keep_within_retention(const std::string& room, const Now& now, Effects& out, const Room* found = nullptr);
  void on_age_scanned(const store::AgeScanned& scanned, const Now& now, Effects& out);
  /// A trim_history of chat's own is answered (`ok`: stored), `took` after it was queued.
  void on_own_trim(const std::string& room, bool ok, SteadyClock::duration took, const Now& now, Effects& out);
  /// Checks `op` against the room book as the batch has left it (RoomBook's rules) and
  /// applies it, adding its records and undo entries; a publish gets its seqs and its
  /// message frames. The refusal, or nullopt if it may go ahead.
  /// Reads the page of history `r` asks for from `room` (named r.room) for `caller`.
  /// `as`: the user reading (their own reactions are marked `mine`).
  void read_history(const Caller& caller, const transport::History& r, const Room& room,
                    const std::optional<std::string>& as, Effects& out);
  std::optional<Error> apply(Pending& op, std::vector<persistence::Record>& records, std::vector<Undo>& undo,
                             std::uint64_t batch, const Now& now);
  /// Writes the events `op` (a room change of `room` that wrote `changes`, the tail of
  /// `records`) makes to the room's events log, created there if new; returns the last
  /// event's seq (0: it makes none).
  std::uint64_t log_room_events(const Pending& op, const std::string& room,
                                std::span<const persistence::Record> changes, std::uint64_t after_seq,
                                std::vector<persistence::Record>& records, std::vector<Undo>& undo,
                                std::uint64_t batch, const Now& now);
  /// The retry window: publishes stored, and on their way, by (room, user, client
  /// message id); rooms and users by number (a room made again under a name keeps it).
  DedupTable dedup_;
  std::unordered_map<std::string, std::uint32_t> dedup_rooms_, dedup_users_;
  /// Retries of a publish on its way, answered with its seq once it is stored.
  std::unordered_map<PubClaim, std::vector<Caller>> retries_;
  /// The retry window's key of a publish; `number` rooms and users not seen yet (else
  /// nullopt for them: nothing of theirs is remembered).
  std::optional<DedupTable::Key> dedup_key(const std::string& room, const std::string& user,
                                           const std::string& client_msg_id, bool number);
  /// Remembers a stored publish in the retry window (a replica's, a restart's).
  void remember(const std::string& room, const std::string& user, const std::string& client_msg_id,
                std::uint64_t seq, std::uint64_t ts_ms);
  /// A publish the retry window remembers (stored, or on its way).
  std::optional<DedupTable::Seen> remembered(const std::string& room, const std::string& user,
                                             const std::string& client_msg_id);
  /// A publish on its way is stored: its retries get its seq (`duplicate`), or, when
  /// `retries_fail`, that error.
  void stored(PubClaim publication, const std::string& room, std::uint64_t seq, std::uint64_t ts_ms, const Now& now,
              Effects& out, const std::optional<Error>& retries_fail = std::nullopt);
  /// Write requests in line, batches at persistence, batches waiting for replicas.
  Pipeline pipeline_;
  std::map<std::string, PrimaryLog> primary_logs_;
  std::map<std::string, ReplicaLog> replica_logs_;
  std::map<std::string, Seat> seats_;
  std::map<std::string, Route> routes_;  ///< every shard of the topology
  std::set<std::string> feed_topics_;    ///< room topics this node's subscribers follow
  std::unordered_map<std::uint64_t, std::pair<std::string, std::uint64_t>> truncations_;  ///< corr -> (shard, lsn kept)
  std::minstd_rand rng_;
  std::unordered_map<std::uint64_t, Apply> applies_;  ///< replica applies at persistence
  std::uint64_t next_apply_ = 1;
  /// A read of a shard's log for a replica, at persistence, by this node as the shard's
  /// primary in `term`.
  struct LogRead {
    std::string shard, replica;
    std::uint64_t term = 0;
  };
  std::unordered_map<std::uint64_t, LogRead> log_reads_;  ///< by corr
  std::map<std::pair<std::string, std::string>, CopyOut> copies_out_;  ///< by (shard, replica)
  std::map<std::string, CopyIn> copies_in_;                            ///< by shard
  /// A CopyOp at persistence: for a copy going out to `replica`, or (no replica) for the
  /// copy `copy` coming in.
  struct CopyTask {
    std::string shard, replica;
    std::uint64_t copy = 0;
  };
  std::unordered_map<std::uint64_t, CopyTask> copy_ops_;  ///< by corr
  std::uint64_t ticks_ = 0;  ///< heartbeats so far
  SteadyClock::time_point started_{};  ///< on_start
  /// Shards whose log begins past history from before they had replicas: entry 1 is
  /// written (and trimmed) at start.
  std::vector<std::string> log_bases_;
  std::unordered_map<std::uint64_t, Caller> reads_;  ///< history reads at persistence
  std::uint64_t next_corr_ = 1;
  bool stopping_ = false;
  ChatStats stats_;

  std::optional<router::RoomPlacement> placement_;
  std::optional<router::PeerHealth> health_;
  Forwards forwards_;
  std::deque<std::pair<SteadyClock::time_point, std::uint64_t>> forward_order_;  ///< by deadline
  std::unordered_map<std::uint64_t, Gather> gathers_;
  std::uint64_t next_forward_ = 1;
  std::deque<Check> checks_;  ///< in arrival order
  store::Lookup lookups_;     ///< the checks' lookups of this read round, not sent yet
  bool check_timer_armed_ = false;
  std::unordered_map<std::uint64_t, ServiceCall> calls_;
  std::set<std::pair<SteadyClock::time_point, std::uint64_t>> call_deadlines_;
};

}  // namespace switchboard::actors
