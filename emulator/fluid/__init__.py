"""Drug along the fluid path: the pieces the plant (emulator/plant.py) is built from.

- ``path``: ``FluidPath``, where the drug is from the reservoir to the tip and every
  total in and out (the plant's mechanism says how much it pushes; this says where it goes);
- ``slugs``: an ordered series of slugs (volume nL, drug mass pg), first in first out: the
  pump's internal path and the catheter's dead volume (H3);
- ``reservoir``: the well-mixed reservoir's drug mass, exact from cumulative totals;
- ``catheter``: how much of what the mechanism pushes really flows past the catheter
  (occlusion, inflammatory mass, kink: H13, H17), and what a catheter access port
  aspiration returns (H2).

Every quantity is an integer (nL, pg, ms, ppm); 1 ug/mL is 1 pg/nL, so a volume times a
concentration is a mass with no conversion factor (docs/pump-model.md, "Drug in the fluid
path").
"""
