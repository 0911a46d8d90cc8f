#include "switchboard/actors/chat/entry_rules.hpp"

#include <algorithm>
#include <map>

namespace switchboard::actors {
namespace {

std::string named(const std::string& name) { return "'" + name + "'"; }

}  // namespace

void EntryRules::count_in(const Change& c, const std::string& user, const std::string& key, bool& deleted,
                          bool& reacted, std::map<std::string, std::uint64_t>& counts) {
  if (c.kind == EntryKind::remove) deleted = true;
  if (c.kind != EntryKind::react) return;
  if (c.user == user && c.key == key) reacted = c.on;
  auto& n = counts[c.key];
  n = c.on ? n + 1 : n - std::min<std::uint64_t>(n, 1);
}

void EntryRules::fold_one(const std::string& room, std::uint64_t seq, const std::string& user, const std::string& key,
                          persistence::TargetState& target) const {
  std::map<std::string, std::uint64_t> counts;
  for (const auto& r : target.reactions) counts[r.key] = r.count;
  bool changed = false;
  for (const Change& c : changes_) {
    if (c.durable || c.target != seq || c.room != room) continue;
    count_in(c, user, key, target.deleted, target.reacted, counts);
    changed = true;
  }
  if (changed) {
    target.reactions.clear();
    for (const auto& [k, n] : counts)
      if (n > 0) target.reactions.push_back({k, n});
  }
}

std::uint64_t EntryRules::fold(const transport::Publish& entry, persistence::TargetState& target,
                               persistence::TargetState* also) {
  const auto [seq, also_seq] = looked_up(entry);
  fold_one(entry.room, seq, entry.user, entry.key, target);
  if (also_seq != 0 && also != nullptr) fold_one(entry.room, also_seq, entry.user, entry.key, *also);
  marks_.insert(made_);
  return made_;
}

void EntryRules::unmark(std::uint64_t mark) {
  if (auto it = marks_.find(mark); it != marks_.end()) marks_.erase(it);
  prune();
}

void EntryRules::prune() {
  // A change numbered n is news only to lookups answered before it was accepted (marked
  // below n), and to lookups still to come until its batch is durable.
  while (!changes_.empty() && changes_.front().durable &&
         (marks_.empty() || changes_.front().number <= *marks_.begin()))
    changes_.pop_front();
}

std::optional<Error> EntryRules::standing(const std::string& room, std::uint64_t seq,
                                          const persistence::TargetState& target, std::uint64_t mark) const {
  const std::string what = "message " + std::to_string(seq) + " of room " + named(room);
  if (!target.found) return Error{errc::no_such_message, "there is no " + what + " (none yet, or trimmed)"};
  if (target.kind != EntryKind::message)
    return Error{errc::no_such_message, "entry " + std::to_string(seq) + " of room " + named(room) +
                                            (target.kind == EntryKind::edit     ? " is an edit"
                                             : target.kind == EntryKind::remove ? " is a delete"
                                                                                : " is a reaction") +
                                            ", not a message"};
  bool deleted = target.deleted;
  for (const Change& c : changes_)
    if (c.number > mark && c.target == seq && c.room == room && c.kind == EntryKind::remove) deleted = true;
  if (deleted) return Error{errc::message_deleted, what + " was deleted"};
  return std::nullopt;
}

std::optional<Error> EntryRules::check(const transport::Publish& entry, const persistence::TargetState& target,
                                       std::uint64_t mark, Role role, std::uint64_t now_ms,
                                       const persistence::TargetState* also) const {
  if (entry.kind == EntryKind::message) {  // in a thread, or answering a message (4.7.3)
    const auto [seq, also_seq] = looked_up(entry);
    if (auto refused = standing(entry.room, seq, target, mark)) return refused;
    if (entry.thread != 0 && target.thread != 0)
      return Error{errc::nested_thread, "message " + std::to_string(seq) + " of room " + named(entry.room) +
                                            " is in the thread of message " + std::to_string(target.thread) +
                                            ": threads do not nest; name that root"};
    if (also_seq != 0) return standing(entry.room, also_seq, also != nullptr ? *also : persistence::TargetState{}, mark);
    return std::nullopt;
  }
  if (auto refused = standing(entry.room, entry.target, target, mark)) return refused;
  const std::string what = "message " + std::to_string(entry.target) + " of room " + named(entry.room);
  // The target as the changes accepted since the lookup left it.
  bool deleted = false, reacted = target.reacted;
  std::map<std::string, std::uint64_t> counts;
  for (const auto& r : target.reactions) counts[r.key] = r.count;
  for (const Change& c : changes_)
    if (c.number > mark && c.target == entry.target && c.room == entry.room)
      count_in(c, entry.user, entry.key, deleted, reacted, counts);
  const bool author = target.user == entry.user;
  const std::uint64_t age = now_ms > target.ts_ms ? now_ms - target.ts_ms : 0;
  switch (entry.kind) {
    case EntryKind::message:
      return std::nullopt;
    case EntryKind::edit:
      if (!author) return Error{errc::forbidden, "only its author (" + named(target.user) + ") may edit " + what};
      if (edit_window_ms_ != 0 && age > edit_window_ms_)
        return Error{errc::too_late, what + " is past its edit window (" + std::to_string(edit_window_ms_ / 1000) +
                                         " s, [limits] edit_window_s)"};
      return std::nullopt;
    case EntryKind::remove:
      if (role == Role::owner) return std::nullopt;  // an owner deletes any message, at any time
      if (!author)
        return Error{errc::forbidden, "only its author (" + named(target.user) + ") or an owner of the room may delete " +
                                          what};
      if (delete_window_ms_ != 0 && age > delete_window_ms_)
        return Error{errc::too_late, what + " is past its delete window (" + std::to_string(delete_window_ms_ / 1000) +
                                         " s, [limits] delete_window_s)"};
      return std::nullopt;
    case EntryKind::react: {
      if (entry.on && reacted)
        return Error{errc::no_change, named(entry.user) + " reacted with " + named(entry.key) + " to " + what + " already"};
      if (!entry.on && !reacted)
        return Error{errc::no_change, named(entry.user) + " has no reaction " + named(entry.key) + " on " + what};
      if (!entry.on) return std::nullopt;
      std::size_t keys = 0;
      for (const auto& [key, n] : counts) keys += n > 0;
      const auto it = counts.find(entry.key);
      if ((it == counts.end() || it->second == 0) && keys >= max_keys_)
        return Error{errc::limit_reached, what + " has " + std::to_string(keys) +
                                              " reaction keys, the most one message may carry ([limits] "
                                              "max_reaction_keys)"};
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void EntryRules::accepted(const transport::Publish& entry, std::uint64_t batch) {
  changes_.push_back({++made_, batch, entry.room, entry.target, entry.kind, entry.user, entry.key, entry.on});
  prune();
}

void EntryRules::durable(std::uint64_t batch) {
  bool any = false;
  for (Change& c : changes_)
    if (c.batch == batch) c.durable = any = true;
  if (any) prune();
}

void EntryRules::rolled_back(std::uint64_t batch) {
  std::erase_if(changes_, [&](const Change& c) { return c.batch == batch; });
}

}  // namespace switchboard::actors
