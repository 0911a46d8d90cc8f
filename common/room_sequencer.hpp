// RoomSequencer: in-order, exactly-once delivery of room messages to followers that
// each resume from their own last seq. The client library (one follower, itself) and
// the bridge (every WebSocket connection) both deliver through it.
//
// No sockets and no clock of its own: the owner feeds it what arrives (live messages
// from a node's PUB, heads events, history pages, last_seq answers) with the time, and
// carries out what it asks for (deliver these messages to these followers, fetch this
// history page, ask this room's last seq). Gaps are repaired from history as in
// docs/PROTOCOL.md section 5: seqs are gapless, so a follower that is behind the
// newest seq known to be stored fetches the page after its own seq. One page serves
// every follower it overlaps, and fetches with the same start are asked once.
//
// How a gap shows itself:
//  - a live message past a follower's next seq (a drop before it);
//  - a heads event (docs/PROTOCOL.md section 5.2) naming a room's newest seq: it covers
//    the tail of a burst dropped at a high-water mark, which no later message reveals.
//    Heads are numbered per node; one missing, or a node gone silent (and again when
//    it is heard of once more), makes every room ask its last seq once;
//  - its last seq asked once `quiet` after a follow (what was published while the
//    subscription reached the PUB) and after a failed request; and for a room no heads
//    event has named yet (a node from before heads), once the room has been quiet for
//    `quiet` after a live message.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace switchboard {

using FollowerId = std::uint64_t;

template <class Frame>
struct Sequenced {
  std::uint64_t seq = 0;
  Frame frame;
};

/// What RoomSequencer asks of its owner; filled by its calls, emptied by the owner.
template <class Frame>
struct SequencerActions {
  struct Deliver {
    Frame frame;
    std::vector<FollowerId> to;
    bool repaired = false;  ///< it came from history, not from the live stream
  };
  struct Fetch {
    std::string room;
    std::uint64_t after = 0;  ///< history with after = this
    std::uint32_t limit = 0;
  };
  /// Followers whose next messages the room no longer holds (trimmed by its retention):
  /// they go on from `first_seq`. Comes before the deliveries of the same call.
  struct Truncated {
    std::string room;
    std::uint64_t first_seq = 0;
    std::vector<FollowerId> to;
  };
  std::vector<Deliver> deliver;       ///< in this order
  std::vector<Fetch> fetch;           ///< history pages to ask for
  std::vector<std::string> last_seq;  ///< rooms whose last seq to ask for
  std::vector<Truncated> truncated;
  bool empty() const { return deliver.empty() && fetch.empty() && last_seq.empty() && truncated.empty(); }
};

/// What a sequencer did.
struct SequencerStats {
  std::uint64_t live = 0;        ///< deliveries straight from the live stream
  std::uint64_t repaired = 0;    ///< deliveries from history
  std::uint64_t duplicates = 0;  ///< live messages nobody needed (already delivered)
  std::uint64_t heads = 0;       ///< heads events taken
  std::uint64_t heads_gaps = 0;  ///< heads events missed, or nodes gone silent
  std::uint64_t checks = 0;      ///< last seqs asked
  std::uint64_t fetches = 0;     ///< history pages asked
};

template <class Frame>
class RoomSequencer {
 public:
  using Clock = std::chrono::steady_clock;
  using Actions = SequencerActions<Frame>;
  using Message = Sequenced<Frame>;
  /// How many more messages a follower can take now (its send queue's free room);
  /// 0 pauses its catch-up until resume().
  using Budget = std::function<std::size_t(FollowerId)>;

  struct Options {
    std::uint32_t page = 500;  ///< messages asked per history fetch, at most
    /// A room no heads event has named gets its last seq asked once it has been quiet
    /// this long after a live message or a follow.
    std::chrono::milliseconds quiet{250};
    /// A node that sent heads and then none for this long may have lost its last ones:
    /// every room asks its last seq once (nodes send heads at least every second).
    std::chrono::milliseconds heads_silence{3000};
  };

  explicit RoomSequencer(Options options = {}, Budget budget = {})
      : options_(options), budget_(std::move(budget)) {}

  /// A subscription to `room` is under way (its last seq was asked): live messages of
  /// the room are noted from now on. Returns true if the room is new (subscribe the
  /// PUB topic).
  bool expect(const std::string& room) {
    auto [it, added] = rooms_.try_emplace(room);
    ++it->second.expected;
    return added;
  }
  /// The subscription that expect() announced failed. Returns true if the room has
  /// nobody left (unsubscribe the PUB topic).
  bool cancel(const std::string& room) {
    auto it = rooms_.find(room);
    if (it == rooms_.end()) return false;
    if (it->second.expected > 0) --it->second.expected;
    return remove_if_empty(it);
  }
  /// Completes an expect(): `follower` follows `room`, getting every message with
  /// seq > `after`, in order, once. `last_seq` is the room's newest seq as the node
  /// just said. Follows again from `after` if it already followed the room.
  void follow(FollowerId follower, const std::string& name, std::uint64_t after, std::uint64_t last_seq,
              Clock::time_point now) {
    Room& room = rooms_[name];
    if (room.expected > 0) --room.expected;
    room.latest = std::max(room.latest, last_seq);
    room.followers[follower] = Follower{after + 1, std::nullopt};
    // What was published while the subscription reached the node's PUB shows in a heads
    // event; without heads, in one last_seq asked once the room is quiet.
    if (!room.heads_known) schedule(room, now + options_.quiet);
    look_at(name, room, follower);
  }
  /// Returns true if the room has nobody left (unsubscribe the PUB topic).
  bool unfollow(FollowerId follower, const std::string& room) {
    auto it = rooms_.find(room);
    if (it == rooms_.end() || it->second.followers.erase(follower) == 0) return false;
    return remove_if_empty(it);
  }

  /// A message that arrived on the PUB.
  void on_live(const std::string& name, Message m, Clock::time_point now, Actions& out) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) return;
    Room& room = it->second;
    // Past the newest seq known: a gap for whoever is at it. Followers further behind
    // were looked at when that newest seq became known (they wait for a fetch, or for
    // their budget).
    const bool gap = m.seq > room.latest + 1;
    room.latest = std::max(room.latest, m.seq);
    if (!room.heads_known) schedule(room, now + options_.quiet);
    if (!deliver(std::move(m), room, false, out)) ++stats_.duplicates;
    if (gap) dirty_.insert(name);
  }
  /// A heads event of node `origin`, its `number`-th: each room's newest seq (a range of
  /// items with `room` and `seq`, as transport::HeadsEvent::rooms).
  template <class Heads>
  void on_heads(const std::string& origin, std::uint64_t number, const Heads& heads, Clock::time_point now) {
    ++stats_.heads;
    auto [it, first] = origins_.try_emplace(origin, Origin{number, now});
    if (!first) {
      const bool missed = number != it->second.number + 1;
      it->second = Origin{number, now};
      if (missed) recheck_twice(now);
    } else if (silent_.erase(origin) > 0) {
      // Back after a silence: what it named meanwhile never came.
      recheck_twice(now);
    }
    for (const auto& head : heads) {
      auto room = rooms_.find(head.room);
      if (room == rooms_.end()) continue;
      // A check already due stays: it may be a failed fetch's retry, for a follower
      // that is behind what the live messages already showed.
      room->second.heads_known = true;
      if (head.seq > room->second.latest) {
        room->second.latest = head.seq;
        dirty_.insert(head.room);
      }
    }
  }
  /// The answer to a fetch: `messages` in ascending, gapless seq order, `more` as the
  /// node said, and `first_seq` (not 0) when the node said the page is truncated: the
  /// room holds nothing below it, and followers that wanted older messages go on from it.
  void on_history(const std::string& name, std::uint64_t after, std::vector<Message> messages, bool more,
                  Clock::time_point now, Actions& out, std::uint64_t first_seq = 0) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) return;
    Room& room = it->second;
    room.fetching.erase(after);
    if (first_seq > after + 1) {
      typename Actions::Truncated skipped{name, first_seq, {}};
      for (auto& [id, f] : room.followers)
        if (f.next < first_seq) {
          f.next = first_seq;
          skipped.to.push_back(id);
        }
      if (!skipped.to.empty()) out.truncated.push_back(std::move(skipped));
      room.latest = std::max(room.latest, first_seq - 1);
    }
    if (!messages.empty()) room.latest = std::max(room.latest, messages.back().seq + (more ? 1 : 0));
    for (auto& m : messages) deliver(std::move(m), room, true, out);
    for (auto& [id, f] : room.followers)
      if (f.waiting == after) f.waiting.reset();
    if (messages.empty() && !more) {
      // Nothing stored past `after` when the node read it, yet something was known to be:
      // ask the last seq again once the room has been quiet, rather than at once.
      schedule(room, now + options_.quiet);
      return;
    }
    dirty_.insert(name);
  }
  /// A fetch got an error: the room's last seq is asked again after `quiet`, which
  /// fetches again.
  void on_fetch_failed(const std::string& name, std::uint64_t after, Clock::time_point now) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) return;
    Room& room = it->second;
    room.fetching.erase(after);
    for (auto& [id, f] : room.followers)
      if (f.waiting == after) f.waiting.reset();
    schedule(room, now + options_.quiet);
  }
  /// The answer to a last_seq ask.
  void on_last_seq(const std::string& name, std::uint64_t seq) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) return;
    it->second.asking_last_seq = false;
    it->second.latest = std::max(it->second.latest, seq);
    dirty_.insert(name);
  }
  void on_last_seq_failed(const std::string& name, Clock::time_point now) {
    auto it = rooms_.find(name);
    if (it == rooms_.end()) return;
    it->second.asking_last_seq = false;
    schedule(it->second, now + options_.quiet);
  }
  /// A follower whose budget was 0 can take messages again: its catch-up in `room`
  /// carries on.
  void resume(FollowerId follower, const std::string& name) {
    if (auto it = rooms_.find(name); it != rooms_.end()) look_at(name, it->second, follower);
  }
  /// The history fetches now due: for every follower that is behind, waits for no
  /// fetch and has budget. Call after handing over the deliveries of the calls above
  /// (so that the budget counts them).
  void plan(Actions& out) {
    for (const auto& name : dirty_)
      if (auto it = rooms_.find(name); it != rooms_.end()) {
        it->second.looked_at.clear();
        catch_up(name, it->second, out);
      }
    dirty_.clear();
    // A follow or a resume looks at that follower alone: a room of N followers is not
    // walked once per follower that joins it.
    for (const auto& name : looked_at_)
      if (auto it = rooms_.find(name); it != rooms_.end()) {
        Room& room = it->second;
        for (FollowerId id : room.looked_at)
          if (auto f = room.followers.find(id); f != room.followers.end()) catch_up_one(name, room, id, f->second, out);
        room.looked_at.clear();
      }
    looked_at_.clear();
  }
  /// Asks the last seq of rooms whose check is due, and notes nodes gone silent.
  void tick(Clock::time_point now, Actions& out) {
    if (again_at_ && now >= *again_at_) {
      again_at_.reset();
      schedule_all();
    }
    for (auto it = origins_.begin(); it != origins_.end();) {
      if (now - it->second.heard < options_.heads_silence) {
        ++it;
        continue;
      }
      silent_.insert(it->first);  // heard of again: every room is checked once more
      it = origins_.erase(it);
      recheck_all();
    }
    if (scheduled_ == 0) return;  // no room to walk
    for (auto& [name, room] : rooms_) {
      if (!room.check_at || room.asking_last_seq || room.followers.empty() || now < *room.check_at) continue;
      unschedule(room);
      room.asking_last_seq = true;
      ++stats_.checks;
      out.last_seq.push_back(name);
    }
  }
  /// When tick() has something to do next (none: only when something arrives).
  std::optional<Clock::time_point> next_tick() const {
    std::optional<Clock::time_point> at;
    auto sooner = [&](Clock::time_point t) { at = at ? std::min(*at, t) : t; };
    for (const auto& [name, o] : origins_) sooner(o.heard + options_.heads_silence);
    if (again_at_) sooner(*again_at_);
    if (scheduled_ == 0) return at;
    for (const auto& [name, room] : rooms_)
      if (room.check_at && !room.asking_last_seq && !room.followers.empty()) sooner(*room.check_at);
    return at;
  }

  /// The next seq `follower` will get in `room` (0 if it does not follow it).
  /// Every room's last seq is to be asked again at once (the client moved to another
  /// node: what was published meanwhile is found and read from history).
  void recheck() { recheck_all(); }
  std::uint64_t next(FollowerId follower, const std::string& room) const {
    auto it = rooms_.find(room);
    if (it == rooms_.end()) return 0;
    auto f = it->second.followers.find(follower);
    return f == it->second.followers.end() ? 0 : f->second.next;
  }
  std::size_t rooms() const noexcept { return rooms_.size(); }
  const SequencerStats& stats() const noexcept { return stats_; }

 private:
  struct Follower {
    std::uint64_t next = 1;
    std::optional<std::uint64_t> waiting;  ///< the fetch (its `after`) it waits for
  };
  struct Room {
    std::map<FollowerId, Follower> followers;
    int expected = 0;                  ///< subscriptions under way
    std::uint64_t latest = 0;          ///< the highest seq known to be stored
    std::set<std::uint64_t> fetching;  ///< `after` of the fetches in flight
    bool asking_last_seq = false;
    bool heads_known = false;          ///< a heads event named it: no quiet checks
    std::optional<Clock::time_point> check_at;  ///< ask its last seq then
    std::vector<FollowerId> looked_at;  ///< followers plan() looks at (the room is not dirty)
  };

  struct Origin {
    std::uint64_t number = 0;  ///< of its last heads event
    Clock::time_point heard;
  };
  using RoomMap = std::map<std::string, Room>;

  void recheck_all() {
    ++stats_.heads_gaps;
    schedule_all();
  }
  void schedule_all() {
    for (auto& [name, room] : rooms_) schedule(room, Clock::time_point{});
  }
  /// A node's heads went missing and it is heard again: every room is checked now, and
  /// once more `heads_silence` later. The first answers may come from where the node
  /// the owner asks had not heard the room's primary either (a replica's copy, behind,
  /// while the link that dropped the heads was still down); and with the room quiet
  /// since, no live message or heads event would ever show what they missed.
  void recheck_twice(Clock::time_point now) {
    recheck_all();
    again_at_ = now + options_.heads_silence;
  }

  /// A room's last seq is asked at `at`; scheduled_ counts such rooms, so that tick()
  /// and next_tick() walk no room while none has a check (an idle client of many rooms
  /// wakes without walking them).
  void schedule(Room& room, Clock::time_point at) {
    if (!room.check_at) ++scheduled_;
    room.check_at = at;
  }
  void unschedule(Room& room) {
    if (room.check_at) --scheduled_;
    room.check_at.reset();
  }

  bool remove_if_empty(typename RoomMap::iterator it) {
    if (!it->second.followers.empty() || it->second.expected > 0) return false;
    dirty_.erase(it->first);
    looked_at_.erase(it->first);
    unschedule(it->second);
    rooms_.erase(it);
    return true;
  }

  void look_at(const std::string& name, Room& room, FollowerId follower) {
    if (dirty_.count(name)) return;  // every follower is looked at
    room.looked_at.push_back(follower);
    looked_at_.insert(name);
  }

  /// Hands `m` to every follower whose next it is; false if none.
  bool deliver(Message m, Room& room, bool repaired, Actions& out) {
    typename Actions::Deliver batch{std::move(m.frame), {}, repaired};
    for (auto& [id, f] : room.followers)
      if (f.next == m.seq) {
        batch.to.push_back(id);
        ++f.next;
      }
    if (batch.to.empty()) return false;
    (repaired ? stats_.repaired : stats_.live) += batch.to.size();
    out.deliver.push_back(std::move(batch));
    return true;
  }

  /// Fetches for every follower of the room that is behind and waits for nothing.
  void catch_up(const std::string& name, Room& room, Actions& out) {
    for (auto& [id, f] : room.followers) catch_up_one(name, room, id, f, out);
  }
  void catch_up_one(const std::string& name, Room& room, FollowerId id, Follower& f, Actions& out) {
    if (f.waiting || f.next > room.latest) return;
    // A follower catches up no faster than it sends: a page never overflows its queue.
    const std::size_t budget = budget_ ? budget_(id) : options_.page;
    if (budget == 0) return;
    const std::uint64_t after = f.next - 1;
    f.waiting = after;
    // Followers at the same place share one fetch.
    if (room.fetching.insert(after).second) {
      const auto want = std::min<std::uint64_t>({room.latest - after, options_.page, budget});
      ++stats_.fetches;
      out.fetch.push_back({name, after, static_cast<std::uint32_t>(std::max<std::uint64_t>(want, 1))});
    }
  }

  Options options_;
  Budget budget_;
  RoomMap rooms_;
  std::set<std::string> dirty_;      ///< rooms whose followers plan() all looks at
  std::set<std::string> looked_at_;  ///< rooms with some followers for plan() to look at
  std::map<std::string, Origin> origins_;  ///< nodes whose heads came, by name
  std::set<std::string> silent_;           ///< nodes that went silent, until they are heard again
  SequencerStats stats_;
  std::size_t scheduled_ = 0;  ///< rooms with a check_at
  std::optional<Clock::time_point> again_at_;  ///< every room is checked again then (recheck_twice)
};

}  // namespace switchboard
