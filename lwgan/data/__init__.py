"""Data preparation: read raw videos (iPER layout or a folder of videos), find and crop the person, cache
frames. Import from the modules themselves (importing the package costs nothing):

    lwgan.data.prepare   prepare(PrepareOptions(...), out_dir) -> PrepareReport: the prepare stage's work
    lwgan.data.cache     FramesCache(path): random access to prepared frames, safe in DataLoader workers
    lwgan.data.sheet     contact_sheet(cache, path): one labelled frame per video, as a PNG
    lwgan.data.people    finding and following people at the source resolution
"""
