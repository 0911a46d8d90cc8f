// Overloaded: a set of lambdas as one visitor for std::visit.
#pragma once

namespace switchboard {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace switchboard
