"""Open RTL flow: Verilog of the integer fixed-point graph, Verilator simulation, Yosys resources.

Modules: :mod:`.netlist` (signals with exact bounds, CSD shift-add, adder trees, ``ap_fixed``
casts), :mod:`.generate` (a :class:`triggerad.fixedpoint.FixedGraph` -> pipelined module),
:mod:`.sim` (Verilator test bench, latency), :mod:`.synth` (Yosys script and ``stat`` parser),
:mod:`.config` (the ``rtl`` config section), :mod:`.flow` (the whole chain, for
``trigger-ad firmware MODEL --out PRJ --rtl``). Needs the system packages ``verilator`` and
``yosys`` (Debian/Ubuntu: ``apt-get install -y verilator yosys``).
"""
