#include "switchboard/actors/chat/entry_rules.hpp"

#include <algorithm>

namespace switchboard::actors {
namespace {

std::string named(const std::string& name) { return "'" + name + "'"; }

}  // namespace

void EntryRules::count_in(const Change& c, const std::string& user, const std::string& key,
                          persistence::TargetState& target) {
  if (c.kind == EntryKind::remove) target.deleted = true;
  if (c.kind != EntryKind::react) return;
  if (c.user == user && c.key == key) target.reacted = c.on;
  auto& reactions = target.reactions;  // by key, as the store keeps them
  auto at = std::lower_bound(reactions.begin(), reactions.end(), c.key,
                             [](const Reaction& r, const std::string& k) { return r.key < k; });
  if (c.on) {
    if (at == reactions.end() || at->key != c.key) at = reactions.insert(at, {c.key, 0});
    ++at->count;
  } else if (at != reactions.end() && at->key == c.key && --at->count == 0) {
    reactions.erase(at);
  }
}

template <class Pick>
bool EntryRules::fold_in(const std::string& room, std::uint64_t seq, const std::string& user, const std::string& key,
                         persistence::TargetState& target, Pick pick) const {
  const auto held = by_target_.find(std::pair<std::string_view, std::uint64_t>(room, seq));
  if (held == by_target_.end()) return false;
  bool any = false;
  auto from = changes_.begin();
  for (const std::uint64_t number : held->second) {  // ascending, as changes_ is
    from = std::lower_bound(from, changes_.end(), number,
                            [](const Change& c, std::uint64_t n) { return c.number < n; });
    if (!pick(*from)) continue;
    count_in(*from, user, key, target);
    any = true;
  }
  return any;
}

std::uint64_t EntryRules::fold(const transport::Publish& entry, persistence::TargetState& target,
                               persistence::TargetState* also) {
  const auto [seq, also_seq] = looked_up(entry);
  auto unseen = [](const Change& c) { return !c.durable; };  // in batches the lookup could not see
  fold_in(entry.room, seq, entry.user, entry.key, target, unseen);
  if (also_seq != 0 && also != nullptr) fold_in(entry.room, also_seq, entry.user, entry.key, *also, unseen);
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
         (marks_.empty() || changes_.front().number <= *marks_.begin())) {
    const Change& c = changes_.front();
    auto held = by_target_.find(std::pair<std::string_view, std::uint64_t>(c.room, c.target));
    if (held != by_target_.end()) {
      std::erase(held->second, c.number);
      if (held->second.empty()) by_target_.erase(held);
    }
    changes_.pop_front();
  }
}

std::optional<Error> EntryRules::standing(const std::string& room, std::uint64_t seq,
                                          const persistence::TargetState& target) {
  const std::string what = "message " + std::to_string(seq) + " of room " + named(room);
  if (!target.found) return Error{errc::no_such_message, "there is no " + what + " (none yet, or trimmed)"};
  if (target.kind != EntryKind::message)
    return Error{errc::no_such_message, "entry " + std::to_string(seq) + " of room " + named(room) +
                                            (target.kind == EntryKind::edit     ? " is an edit"
                                             : target.kind == EntryKind::remove ? " is a delete"
                                                                                : " is a reaction") +
                                            ", not a message"};
  if (target.deleted) return Error{errc::message_deleted, what + " was deleted"};
  return std::nullopt;
}

std::optional<Error> EntryRules::check(const transport::Publish& entry, const persistence::TargetState& looked,
                                       std::uint64_t mark, Role role, std::uint64_t now_ms,
                                       const persistence::TargetState* also) const {
  // What the lookup found, as the changes accepted since its answer leave it (a copy
  // only when there are any).
  auto since = [&](std::uint64_t seq, const persistence::TargetState& found, persistence::TargetState& folded)
      -> const persistence::TargetState& {
    folded = found;
    return fold_in(entry.room, seq, entry.user, entry.key, folded, [&](const Change& c) { return c.number > mark; })
               ? folded
               : found;
  };
  const auto [seq, also_seq] = looked_up(entry);
  persistence::TargetState folded;
  const persistence::TargetState& target = since(seq, looked, folded);
  if (auto refused = standing(entry.room, seq, target)) return refused;
  if (entry.kind == EntryKind::message) {  // in a thread, or answering a message (4.7.3)
    if (entry.thread != 0 && target.thread != 0)
      return Error{errc::nested_thread, "message " + std::to_string(seq) + " of room " + named(entry.room) +
                                            " is in the thread of message " + std::to_string(target.thread) +
                                            ": threads do not nest; name that root"};
    if (also_seq == 0) return std::nullopt;
    persistence::TargetState also_folded;
    return standing(entry.room, also_seq, since(also_seq, also != nullptr ? *also : persistence::TargetState{}, also_folded));
  }
  const std::string what = "message " + std::to_string(entry.target) + " of room " + named(entry.room);
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
      if (entry.on && target.reacted)
        return Error{errc::no_change, named(entry.user) + " reacted with " + named(entry.key) + " to " + what + " already"};
      if (!entry.on && !target.reacted)
        return Error{errc::no_change, named(entry.user) + " has no reaction " + named(entry.key) + " on " + what};
      if (!entry.on) return std::nullopt;
      const bool has_key = std::any_of(target.reactions.begin(), target.reactions.end(),
                                       [&](const Reaction& r) { return r.key == entry.key; });
      if (!has_key && target.reactions.size() >= max_keys_)
        return Error{errc::limit_reached, what + " has " + std::to_string(target.reactions.size()) +
                                              " reaction keys, the most one message may carry ([limits] "
                                              "max_reaction_keys)"};
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void EntryRules::accepted(const transport::Publish& entry, std::uint64_t batch) {
  changes_.push_back({++made_, batch, entry.room, entry.target, entry.kind, entry.user, entry.key, entry.on});
  by_target_[{entry.room, entry.target}].push_back(made_);
  prune();
}

void EntryRules::durable(std::uint64_t batch) {
  bool any = false;
  for (Change& c : changes_)
    if (c.batch == batch) c.durable = any = true;
  if (any) prune();
}

void EntryRules::rolled_back(std::uint64_t batch) {
  for (const Change& c : changes_) {
    if (c.batch != batch) continue;
    auto held = by_target_.find(std::pair<std::string_view, std::uint64_t>(c.room, c.target));
    if (held == by_target_.end()) continue;
    std::erase(held->second, c.number);
    if (held->second.empty()) by_target_.erase(held);
  }
  std::erase_if(changes_, [&](const Change& c) { return c.batch == batch; });
}

}  // namespace switchboard::actors
