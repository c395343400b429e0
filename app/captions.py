"""How to read each of the app's attention figures, one paragraph each, shown under them."""

ATTENTION_CAPTION = ("One softmax row: the weight the query pixel (x) gives each pixel of its window in one block "
                     "and head (graph blocks: before and after the graph); titles give the row's total and, for "
                     "an input padded to the window grid, the share on padding pixels the face cannot show.")
DISTANCE_CAPTION = ("Reach of each block among the keys it keeps, in LR pixels: how far each query looks, "
                    "weighted by its attention row renormalised to sum 1, so that the weight a graph cuts does "
                    "not count as a shorter reach (that weight is the next figure's \"softmax weight cut by the "
                    "graph\"); the line is the mean over heads, the dots the single heads.")
MASS_CAPTION = ("Where each query's attention row goes, per block: its total weight after the graph (boxes: "
                "quartiles, whiskers: min and max over queries and heads; 1 without a graph), the softmax "
                "weight the graph cut (the mass it takes, apart from the reach above), the weight on the query "
                "itself, and the share on the mirror padding (inputs padded to the window grid); lines: mean "
                "over queries and heads, dots: single heads.")
ROLLOUT_CAPTION = ("Attention rollout: how much of the network's last representation of the marked pixel is "
                   "drawn, through the attention of every block, from each input pixel (convolutions and MLPs "
                   "are ignored); titles give the share drawn from the mirror padding of a padded input.")
