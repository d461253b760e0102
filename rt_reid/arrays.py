"""Array type aliases shared by the runtime modules (typing only, no heavy imports)."""

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
F64Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
I64Array = NDArray[np.int64]
