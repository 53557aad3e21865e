#include "berth/core/history_budget.hpp"

namespace berth::core {

std::size_t turns_to_drop(std::span<const budget_item> items, std::size_t budget) noexcept {
  const std::size_t n = items.size();
  std::size_t cut = 0;  // the smallest: the newest item is always kept
  std::size_t total = 0;
  for (std::size_t j = n; j-- > 0;) {
    total += items[j].tokens;
    if (total > budget && j + 1 < n) {
      cut = j + 1;
      break;
    }
  }
  for (std::size_t i = cut; i < n; ++i)
    if (items[i].starts_turn) return i;
  for (std::size_t i = cut; i-- > 0;)
    if (items[i].starts_turn) return i;
  return cut;
}

}  // namespace berth::core
