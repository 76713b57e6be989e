"""A trained LWGAN on one's own photos and videos: motion imitation, appearance transfer and novel view
synthesis (the `lwgan imitate`, `lwgan transfer` and `lwgan view` commands).

    media        reading the user's image and video files, with errors that name the file
    person       a photo or a video of a person -> person-centred square crops and a body fit (the fit
                 stage's detector and fitter)
    synthesis    the generator driven by meshes: correspondence of any mesh, flows from one or several
                 sources, the Liquid Warping Block over them
    personalize  an optional fine-tune of G on the source photo before synthesis
    tasks        the three tasks as functions of fitted people
"""
