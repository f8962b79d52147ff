"""Gradient summation over the ranks in flat, contiguous buckets.

The parameters are grouped, in reverse order (roughly the order in which
``backward`` finishes them), into buckets of at most ``bucket_cap_mb``
megabytes of one dtype. Each bucket is one ``Allreduce`` message: a few large
messages per step instead of one per parameter.

Where the gradients are, by ``gradient_as_bucket_view``:

- ``None`` (the default): when the gradients already lie back to back in
  memory (one flat array viewed per parameter, as a flat-parameter layout
  has), the bucket is that memory itself; otherwise, when every ``.grad``
  owns its memory (nobody else's flat buffer), each is rebound once to a view
  of its bucket. Either way no step copies a gradient;
- ``True``: always rebind (as torch's option of the same name);
- ``False``: never rebind: unless they already lie back to back, a bucket's
  gradients are copied into its flat buffer, summed there and copied back
  into each ``.grad`` in place (two passes over the gradients each step:
  ~10 ms for 34 MB on the benchmark machine).

With ``overlap=True`` a bucket is sent (``Iallreduce``) as soon as the
``backward`` of every module that owns one of its parameters has returned,
while the rest of ``backward`` runs; see ``docs/distributed.md`` for when it pays.
"""

import functools

import numpy as np

from .._checks import check_number
from ..module import Parameter


def _address(array):
    return array.__array_interface__["data"][0]


class _Bucket:
    def __init__(self, params):
        self.params = params
        self.dtype = params[0].value.dtype
        self.sizes = [p.value.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self._own = None       # our flat buffer, made when first needed
        self.flat = None       # what is summed: our buffer, or the gradients' own memory (zero copy)
        self.views = None      # the .grad arrays the flat buffer is known to be
        self.pending = 0       # module backwards still to finish before the bucket is ready

    def own(self):
        """Our flat buffer (allocated once): ``self.flat`` unless the gradients lie back to back already."""
        if self._own is None:
            self._own = np.zeros(self.offsets[-1], dtype=self.dtype)
        return self._own

    def bind_views(self):
        """Make each parameter's ``.grad`` a view into the flat buffer (values kept)."""
        own = self.flat = self.own()
        for p, lo, hi in zip(self.params, self.offsets, self.offsets[1:]):
            own[lo:hi] = p.grad.reshape(-1)
            p.grad = own[lo:hi].reshape(p.value.shape)
        self.views = [p.grad for p in self.params]

    def detect_views(self):
        """Use the gradients' own memory when they lie back to back in one array."""
        grads = [p.grad for p in self.params]
        base = grads[0].base
        if base is None or not base.flags.c_contiguous or base.dtype != self.dtype:
            return
        if not all(g.base is base and g.flags.c_contiguous for g in grads):
            return
        ordered = sorted(grads, key=_address)
        for a, b in zip(ordered, ordered[1:]):
            if _address(a) + a.nbytes != _address(b):
                return
        start = (_address(ordered[0]) - _address(base)) // base.itemsize
        flat = base.reshape(-1)[start:start + self.offsets[-1]]
        self.flat, self.views = flat, grads

    def zero_copy(self):
        views = self.views
        return views is not None and all(p.grad is v for p, v in zip(self.params, views))

    def pack(self):
        flat = self.flat
        for p, lo, hi in zip(self.params, self.offsets, self.offsets[1:]):
            flat[lo:hi] = p.grad.reshape(-1)

    def unpack(self):
        flat = self.flat
        for p, lo, hi in zip(self.params, self.offsets, self.offsets[1:]):
            np.copyto(p.grad, flat[lo:hi].reshape(p.grad.shape))


class GradientReducer:
    """Sums the ``.grad`` of ``params`` over the ranks of ``group`` (a ``runtime`` communicator).

    Args:
        params: the Parameters (``model.parameters()``), in forward order.
        group: the communicator (``nanonet.distributed.init()``).
        bucket_cap_mb: the largest bucket, in megabytes (MiB, as torch's
            ``bucket_cap_mb``); a larger parameter gets a bucket of its own.
        gradient_as_bucket_view: None (rebind each ``.grad`` to a view of its
            bucket unless the gradients already lie back to back or are views
            of something else), True (always rebind) or False (never: copy in
            and out of the buckets each step); see the module docstring.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> from nanonet import distributed as dist
        >>> model = nn.Linear(3, 2, rng=0)
        >>> reducer = dist.GradientReducer(model.parameters(), dist.init(), bucket_cap_mb=1e-5)
        >>> reducer
        GradientReducer(2 parameters in 2 buckets, 64 bytes, overlap=False)
        >>> reducer.allreduce(scale=0.5)     # a no-op sum over one process, then the scale
    """

    def __init__(self, params, group, *, bucket_cap_mb=25.0, gradient_as_bucket_view=None):
        params = list(params)
        if not params or not all(isinstance(p, Parameter) for p in params):
            raise TypeError(f"GradientReducer expected a non-empty list of Parameters, got {params!r}")
        cap = check_number("GradientReducer", "bucket_cap_mb", bucket_cap_mb, low=0, low_open=True) * 2**20
        self.group, self.params, self.overlap = group, params, False
        self.buckets = []
        current, size = [], 0
        for p in reversed(params):
            if current and (size + p.value.nbytes > cap or p.value.dtype != current[0].value.dtype):
                self.buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.value.nbytes
        self.buckets.append(_Bucket(current))
        for bucket in self.buckets:
            if gradient_as_bucket_view is not True:
                bucket.detect_views()
            owned = all(p.grad.base is None for p in bucket.params)
            if gradient_as_bucket_view or (gradient_as_bucket_view is None and bucket.views is None and owned):
                bucket.bind_views()
        self._hooked, self._requests, self._started = [], [], 0

    @property
    def nbytes(self):
        """The bytes of gradients summed per step."""
        return sum(b.offsets[-1] * b.dtype.itemsize for b in self.buckets)

    def allreduce(self, scale=None):
        """Sum every ``.grad`` over the ranks (blocking), then multiply by ``scale`` if given."""
        for bucket in self.buckets:
            self._start(bucket, blocking=True)
            self._finish(bucket, scale)

    def _start(self, bucket, blocking=False):
        if not bucket.zero_copy():
            bucket.flat, bucket.views = bucket.own(), None
            bucket.pack()
        if blocking:
            self.group.allreduce_sum(bucket.flat)
            return None
        return self.group.iallreduce_sum(bucket.flat)

    def _finish(self, bucket, scale):
        if scale is not None:
            bucket.flat *= scale
        if bucket.views is None:
            bucket.unpack()

    # -- overlap with backward ---------------------------------------------------------------------------
    def attach(self, model):
        """Overlap: send each bucket during ``model.backward`` as soon as its gradients are final.

        Wraps ``backward`` on the instances that own parameters (removed by
        :meth:`detach`). Between :meth:`begin` (before backward) and
        :meth:`finish` (after it), buckets start in a fixed order (bucket 0
        first) on every rank, as non-blocking collectives require.
        """
        owners = {id(p): [] for p in self.params}
        unhookable = set()   # a parameter whose owner already has its own backward on the instance, or none
        for module in model.modules():
            for p in vars(module).values():
                if not (isinstance(p, Parameter) and id(p) in owners):
                    continue
                if "backward" in vars(module):
                    unhookable.add(id(p))
                else:
                    owners[id(p)].append(module)
        unhookable |= {key for key, modules in owners.items() if not modules}
        self._counts, self._blocked = {}, set()
        for i, bucket in enumerate(self.buckets):
            for p in bucket.params:
                if id(p) in unhookable:
                    self._blocked.add(i)     # sent by finish(), after backward
                for module in owners[id(p)]:
                    self._counts.setdefault(id(module), []).append(i)
        for module in {id(m): m for ms in owners.values() for m in ms}.values():
            module.backward = functools.partial(self._hook, module, type(module).backward.__get__(module))
            self._hooked.append(module)
        self.overlap = True

    def detach(self):
        for module in self._hooked:
            del module.backward
        self._hooked, self.overlap = [], False

    def begin(self):
        """Before ``backward``: every bucket waits for its modules."""
        for i, bucket in enumerate(self.buckets):
            bucket.pending = 1 if i in self._blocked else 0
        for indices in self._counts.values():
            for i in indices:
                self.buckets[i].pending += 1
        self._requests, self._started = [], 0

    def _hook(self, module, backward, grad_out, *args, **kwargs):
        result = backward(grad_out, *args, **kwargs)
        for i in self._counts.get(id(module), ()):
            self.buckets[i].pending -= 1
        self._start_ready()
        if self._requests:
            self.group.test_all(self._requests)
        return result

    def _start_ready(self, everything=False):
        while self._started < len(self.buckets):
            bucket = self.buckets[self._started]
            if bucket.pending > 0 and not everything:
                return
            self._requests.append(self._start(bucket))
            self._started += 1

    def finish(self, scale=None):
        """After ``backward``: send what is left, wait for every bucket, copy the sums back."""
        self._start_ready(everything=True)
        self.group.wait_all([r for r in self._requests if r is not None])
        for bucket in self.buckets:
            self._finish(bucket, scale)
        self._requests = []

    def __repr__(self):
        return (f"GradientReducer({len(self.params)} parameters in {len(self.buckets)} buckets, "
                f"{self.nbytes} bytes, overlap={self.overlap})")
