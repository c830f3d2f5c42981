from django.conf import settings


def site(request):
    return {"release": settings.RELEASE, "served_by": settings.SERVED_BY}
