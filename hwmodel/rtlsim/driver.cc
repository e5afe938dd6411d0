// Generic stream driver for a CXXRTL design (hwmodel.rtlsim): feeds ``amaranth.lib.stream``
// sources, drains sinks, and reproduces the pysim testbench protocol of hwmodel/tb exactly:
// inputs are set between clock edges, ``ready``/``valid``/``payload`` are sampled just before a
// rising edge, a transfer happens at an edge where both were high, sources go back to back.
// Compiled together with the design's write_cxxrtl output and the CXXRTL C API.
#include <cxxrtl/capi/cxxrtl_capi.h>
#include <cxxrtl/capi/cxxrtl_capi_vcd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" cxxrtl_toplevel cxxrtl_design_create();

namespace {

struct Stream {
  cxxrtl_object *valid = nullptr, *ready = nullptr, *payload = nullptr;
  size_t chunks = 0;  // 32-bit chunks per payload
  std::vector<uint32_t> data;  // packed payloads, ``chunks`` words each
  std::vector<uint64_t> edges;  // edge of each transfer (1 = first rising edge)
};

struct Source : Stream {
  size_t count = 0, sent = 0;
};

struct Sink : Stream {
  int64_t limit = -1;  // payloads (with end_bit set, if any) to collect; -1: never finishes
  int64_t end_bit = -1;
  uint64_t initial_wait = 0, gap = 0, wait = 0;
  bool in_gap = false, finished = false;
  int64_t ends = 0;
  cxxrtl_object *pulse = nullptr;  // input bit raised on the last edge of each gap
  uint64_t pulse_bit = 0;
  bool sampled_valid = false;
  std::vector<uint32_t> sampled;
};

struct Driver {
  cxxrtl_handle handle = nullptr;
  cxxrtl_object *clk = nullptr;
  std::vector<Source> sources;
  std::vector<Sink> sinks;
  std::vector<cxxrtl_object *> pulses;
  cxxrtl_vcd vcd = nullptr;
  FILE *vcd_file = nullptr;
};

void set_bit(cxxrtl_object *object, uint64_t bit, bool value) {
  uint32_t mask = 1u << (bit % 32);
  uint32_t &word = object->next[bit / 32];
  word = value ? (word | mask) : (word & ~mask);
}

bool get_bit(const uint32_t *words, uint64_t bit) { return (words[bit / 32] >> (bit % 32)) & 1; }

void set_words(cxxrtl_object *object, const uint32_t *words, size_t chunks) {
  for (size_t i = 0; i < chunks; i++) object->next[i] = words[i];
}

bool lookup(Driver *d, Stream &stream, const char *name) {
  std::string base(name);
  stream.valid = cxxrtl_get(d->handle, (base + "__valid").c_str());
  stream.ready = cxxrtl_get(d->handle, (base + "__ready").c_str());
  stream.payload = cxxrtl_get(d->handle, (base + "__payload").c_str());
  if (!stream.valid || !stream.ready || !stream.payload) return false;
  stream.chunks = (stream.payload->width + 31) / 32;
  return true;
}

void vcd_sample(Driver *d, uint64_t time) {
  if (!d->vcd) return;
  cxxrtl_vcd_sample(d->vcd, time);
  const char *text;
  size_t size;
  cxxrtl_vcd_read(d->vcd, &text, &size);
  fwrite(text, 1, size, d->vcd_file);
}

void drive_inputs(Driver *d) {
  for (auto &source : d->sources) {
    bool active = source.sent < source.count;
    set_bit(source.valid, 0, active);
    if (active) set_words(source.payload, &source.data[source.sent * source.chunks], source.chunks);
  }
  for (auto *pulse : d->pulses)
    for (size_t i = 0; i < (pulse->width + 31) / 32; i++) pulse->next[i] = 0;
  for (auto &sink : d->sinks) {
    set_bit(sink.ready, 0, !sink.finished && sink.wait == 0);
    if (sink.pulse && sink.in_gap && sink.wait == 1) set_bit(sink.pulse, sink.pulse_bit, true);
  }
}

void after_edge(Driver *d, uint64_t edge, const std::vector<bool> &source_ready) {
  for (size_t i = 0; i < d->sources.size(); i++) {
    Source &source = d->sources[i];
    if (source.sent < source.count && source_ready[i]) {
      source.edges.push_back(edge);
      source.sent++;
    }
  }
  for (auto &sink : d->sinks) {
    if (sink.finished) continue;
    if (sink.wait > 0) {
      if (--sink.wait == 0) sink.in_gap = false;
      continue;
    }
    if (!sink.sampled_valid) continue;
    sink.data.insert(sink.data.end(), sink.sampled.begin(), sink.sampled.end());
    sink.edges.push_back(edge);
    if (sink.end_bit < 0 || get_bit(sink.sampled.data(), sink.end_bit)) sink.ends++;
    if (sink.limit >= 0 && sink.ends >= sink.limit) {
      sink.finished = true;
    } else {
      sink.wait = sink.gap;
      sink.in_gap = sink.gap > 0;
    }
  }
}

bool all_done(const Driver *d) {
  for (auto &source : d->sources)
    if (source.sent < source.count) return false;
  for (auto &sink : d->sinks)
    if (sink.limit >= 0 && !sink.finished) return false;
  return true;
}

}  // namespace

extern "C" {

void *rtlsim_create() {
  Driver *d = new Driver;
  d->handle = cxxrtl_create(cxxrtl_design_create());
  d->clk = cxxrtl_get(d->handle, "clk");
  return d;
}

void rtlsim_destroy(void *driver) {
  Driver *d = static_cast<Driver *>(driver);
  if (d->vcd) cxxrtl_vcd_destroy(d->vcd);
  if (d->vcd_file) fclose(d->vcd_file);
  cxxrtl_destroy(d->handle);
  delete d;
}

// Width in bits of the payload of stream ``name`` (``cmd``, ``sm__0``...); -1 if absent.
int64_t rtlsim_payload_width(void *driver, const char *name) {
  Stream probe;
  if (!lookup(static_cast<Driver *>(driver), probe, name)) return -1;
  return probe.payload->width;
}

int rtlsim_add_source(void *driver, const char *name, const uint32_t *data, size_t count) {
  Driver *d = static_cast<Driver *>(driver);
  Source source;
  if (!lookup(d, source, name)) return -1;
  source.count = count;
  source.data.assign(data, data + count * source.chunks);
  d->sources.push_back(source);
  return 0;
}

int rtlsim_add_sink(void *driver, const char *name, int64_t limit, int64_t end_bit,
                    uint64_t initial_wait, uint64_t gap, const char *pulse, uint64_t pulse_bit) {
  Driver *d = static_cast<Driver *>(driver);
  Sink sink;
  if (!lookup(d, sink, name)) return -1;
  sink.limit = limit;
  sink.end_bit = end_bit;
  sink.initial_wait = sink.wait = initial_wait;
  sink.gap = gap;
  sink.sampled.resize(sink.chunks);
  if (pulse && *pulse) {
    sink.pulse = cxxrtl_get(d->handle, pulse);
    if (!sink.pulse || pulse_bit >= sink.pulse->width) return -2;
    sink.pulse_bit = pulse_bit;
    bool known = false;
    for (auto *p : d->pulses) known |= p == sink.pulse;
    if (!known) d->pulses.push_back(sink.pulse);
  }
  d->sinks.push_back(sink);
  return 0;
}

// Hold the input port ``name`` at ``words`` (``chunks`` 32-bit words, little-endian) for the
// whole run (a strap such as the Local CP's die id); 0, or -1 if the design has no such input.
int rtlsim_set_input(void *driver, const char *name, const uint32_t *words, size_t chunks) {
  Driver *d = static_cast<Driver *>(driver);
  cxxrtl_object *object = cxxrtl_get(d->handle, name);
  if (!object || !(object->flags & CXXRTL_INPUT) || !object->next || chunks != (object->width + 31) / 32) return -1;
  set_words(object, words, chunks);
  return 0;
}

int rtlsim_open_vcd(void *driver, const char *path) {
  Driver *d = static_cast<Driver *>(driver);
  d->vcd_file = fopen(path, "wb");
  if (!d->vcd_file) return -1;
  d->vcd = cxxrtl_vcd_create();
  cxxrtl_vcd_timescale(d->vcd, 1, "ps");
  cxxrtl_vcd_add_from_without_memories(d->vcd, d->handle);
  return 0;
}

// Run until every source is empty and every counted sink is full; the number of rising edges,
// or -1 if that takes more than ``max_cycles`` edges (the pysim watchdog's limit).
int64_t rtlsim_run(void *driver, uint64_t max_cycles) {
  Driver *d = static_cast<Driver *>(driver);
  std::vector<bool> source_ready(d->sources.size());
  uint64_t edge = 0;
  while (!all_done(d)) {
    if (edge >= max_cycles) return -1;
    drive_inputs(d);
    set_bit(d->clk, 0, false);
    cxxrtl_step(d->handle);
    vcd_sample(d, edge * 1000);
    for (size_t i = 0; i < d->sources.size(); i++)
      source_ready[i] = get_bit(d->sources[i].ready->curr, 0);
    for (auto &sink : d->sinks) {
      sink.sampled_valid = get_bit(sink.valid->curr, 0);
      for (size_t i = 0; i < sink.chunks; i++) sink.sampled[i] = sink.payload->curr[i];
    }
    set_bit(d->clk, 0, true);
    cxxrtl_step(d->handle);
    vcd_sample(d, edge * 1000 + 500);
    edge++;
    after_edge(d, edge, source_ready);
  }
  if (d->vcd) fflush(d->vcd_file);
  return static_cast<int64_t>(edge);
}

size_t rtlsim_sink_count(void *driver, size_t sink) {
  return static_cast<Driver *>(driver)->sinks[sink].edges.size();
}

void rtlsim_sink_read(void *driver, size_t sink, uint32_t *data, uint64_t *edges) {
  Sink &s = static_cast<Driver *>(driver)->sinks[sink];
  for (size_t i = 0; i < s.data.size(); i++) data[i] = s.data[i];
  for (size_t i = 0; i < s.edges.size(); i++) edges[i] = s.edges[i];
}

void rtlsim_source_edges(void *driver, size_t source, uint64_t *edges) {
  Source &s = static_cast<Driver *>(driver)->sources[source];
  for (size_t i = 0; i < s.edges.size(); i++) edges[i] = s.edges[i];
}

}  // extern "C"
