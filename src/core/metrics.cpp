#include "berth/core/metrics.hpp"

#include <cmath>
#include <map>
#include <sstream>

namespace berth::core {

counter& metrics::get_counter(const std::string& name, const std::string& help, const std::string& labels) {
  std::lock_guard lock(mutex_);
  for (auto& c : counters_)
    if (c.name == name && c.labels == labels) return c.value;
  auto& e = counters_.emplace_back();
  e.name = name;
  e.help = help;
  e.labels = labels;
  return e.value;
}

void metrics::add_gauge(const std::string& name, const std::string& help, std::function<double()> read,
                        const std::string& labels) {
  std::lock_guard lock(mutex_);
  gauges_.push_back({name, help, labels, std::move(read)});
}

std::string metrics::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  // Group series by metric name so HELP/TYPE appear once per family, as the format requires.
  std::map<std::string, std::vector<const counter_entry*>> counter_families;
  for (const auto& c : counters_) counter_families[c.name].push_back(&c);
  for (const auto& [name, series] : counter_families) {
    out << "# HELP " << name << ' ' << series.front()->help << "\n# TYPE " << name << " counter\n";
    for (const auto* c : series)
      out << name << (c->labels.empty() ? "" : "{" + c->labels + "}") << ' ' << c->value.value() << '\n';
  }
  std::map<std::string, std::vector<const gauge_entry*>> gauge_families;
  for (const auto& g : gauges_) gauge_families[g.name].push_back(&g);
  for (const auto& [name, series] : gauge_families) {
    out << "# HELP " << name << ' ' << series.front()->help << "\n# TYPE " << name << " gauge\n";
    for (const auto* g : series) {
      double v = g->read();
      out << name << (g->labels.empty() ? "" : "{" + g->labels + "}") << ' ';
      if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
        out << static_cast<long long>(v);
      else
        out << v;
      out << '\n';
    }
  }
  return out.str();
}

}  // namespace berth::core
