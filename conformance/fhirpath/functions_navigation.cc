// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Tree navigation": children(), descendants().

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

constexpr size_t kDescendantsReserve = 128;  // items; one pool size class (9 KiB)

}  // namespace

Collection Evaluator::navigationFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kChildren: {
      Collection out;
      for (const Item& item : focus) allChildren(item, out);
      return out;
    }
    case Fn::kDescendants: {
      // Breadth-first, appending to the result itself: out[level_start, level_end) is the level
      // whose children come next.
      Collection out;
      // A resource has tens to hundreds of descendants: growing the buffer from a few items
      // moved each of them several times.
      out.reserve(kDescendantsReserve);
      for (const Item& item : focus) allChildren(item, out);
      size_t level_start = 0;
      for (int depth = 0; level_start < out.size() && depth < 100; ++depth) {
        size_t level_end = out.size();
        // allChildren() reads its parent before it appends (which may reallocate `out`).
        for (size_t i = level_start; i < level_end; ++i) allChildren(out[i], out);
        level_start = level_end;
      }
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
