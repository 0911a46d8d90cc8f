// Helpers for tests that drive an actor as a pure handler and read its Effects.
#pragma once

#include <variant>
#include <vector>

#include "switchboard/actors/actor.hpp"

namespace switchboard::testing {

/// The effects of type T (Effects::Send, ::Reply, ...) in `fx`, in order; they are
/// removed from `fx`, the others stay.
template <class T>
std::vector<T> take_effects(actors::Effects& fx) {
  std::vector<T> out;
  actors::Effects rest;
  for (const auto& e : fx.list()) {
    if (auto* p = std::get_if<T>(&e)) out.push_back(*p);
    else rest.add(e);
  }
  fx = rest;
  return out;
}

}  // namespace switchboard::testing
