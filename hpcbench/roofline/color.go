package roofline

import (
	"image/color"

	"gonum.org/v1/plot/plotutil"
)

// plotutilColor is the i-th colour of gonum/plot's default palette.
func plotutilColor(i int) color.Color { return plotutil.Color(i) }
