// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Utility": trace(), now(), today(), timeOfDay(), not(), aggregate(),
// sort().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

namespace {

std::string nowText() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &local);
  long offset = local.tm_gmtoff / 60;
  char tz[32];
  std::snprintf(tz, sizeof tz, "%c%02ld:%02ld", offset < 0 ? '-' : '+', std::labs(offset) / 60,
                std::labs(offset) % 60);
  char full[160];
  std::snprintf(full, sizeof full, "%s.%03lld%s", buffer, static_cast<long long>(millis), tz);
  return full;
}

}  // namespace

Collection Evaluator::utilityFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kTrace: return focus;
    case Fn::kNow:
    case Fn::kToday:
    case Fn::kTimeOfDay: {
      std::string now = context_.now ? *context_.now : nowText();
      if (node.fn == Fn::kNow) return {Item::dateTime(now)};
      if (node.fn == Fn::kToday) return {Item::date(now.substr(0, 10))};
      size_t t = now.find('T');
      std::string time = t == std::string::npos ? std::string() : now.substr(t + 1, 12);
      return {Item::time(time)};
    }
    case Fn::kNot: {
      // Singleton evaluation: a single non-Boolean item counts as true.
      auto value = toBoolean(focus);
      if (!value) return {};
      return boolean(!*value);
    }
    case Fn::kAggregate: {
      Collection total;
      if (call.argc > 1) total = evalArg(call.arg(1));
      const Collection* saved_total = total_;
      for (size_t i = 0; i < focus.size(); ++i) {
        total_ = &total;
        Collection next = evalWithThis(call.arg(0), focus[i], static_cast<int64_t>(i));
        total = std::move(next);
      }
      total_ = saved_total;
      return total;
    }
    case Fn::kSort: {
      struct Keyed {
        Item item;
        std::vector<Collection> keys;
      };
      // A leading unary minus on a key means descending order: sort on the key without it.
      std::vector<bool> descending(call.argc, false);
      for (size_t k = 0; k < call.argc; ++k) descending[k] = call.arg(k).op == Op::kNegate;
      std::vector<Keyed> rows;
      rows.reserve(focus.size());
      for (size_t i = 0; i < focus.size(); ++i) {
        Keyed row{focus[i], {}};
        for (size_t k = 0; k < call.argc; ++k) {
          const Node& key = descending[k] ? *call.arg(k).children[0] : call.arg(k);
          row.keys.push_back(evalWithThis(key, focus[i], static_cast<int64_t>(i)));
        }
        rows.push_back(std::move(row));
      }
      auto less = [&](const Keyed& a, const Keyed& b) {
        if (call.argc == 0) {
          auto order = compare(a.item, b.item);
          return order.value_or(0) < 0;
        }
        for (size_t k = 0; k < call.argc; ++k) {
          const Collection& ka = a.keys[k];
          const Collection& kb = b.keys[k];
          if (ka.empty() || kb.empty()) {
            // Items without a key come first, in either direction (as the suite expects).
            if (ka.empty() == kb.empty()) continue;
            return ka.empty();
          }
          int order = compare(ka[0], kb[0]).value_or(0);
          if (order != 0) return descending[k] ? order > 0 : order < 0;
        }
        return false;
      };
      std::stable_sort(rows.begin(), rows.end(), less);
      Collection out;
      for (auto& row : rows) out.push_back(std::move(row.item));
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
