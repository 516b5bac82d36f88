// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Combining": union(), combine().

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

Collection Evaluator::combiningFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kUnion: {
      Collection other = evalArg(call.arg(0));
      Collection out;
      auto add = [&](const Item& item) {
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) return;
        }
        out.push_back(item);
      };
      for (const Item& item : focus) add(item);
      for (const Item& item : other) add(item);
      return out;
    }
    case Fn::kCombine: {
      Collection out = focus;
      Collection other = evalArg(call.arg(0));
      out.insert(out.end(), other.begin(), other.end());
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
